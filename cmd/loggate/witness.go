package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/audit/witness"
)

// Exit codes of `loggate audit witness` beyond 0 (the trail extends the
// state), 1 (it does not: rollback, truncation, fork, key, stale) and 2
// (usage).
const (
	exitWitnessUnreachable = 5 // nothing checked: the server could not be read
	exitWitnessState       = 6 // nothing checked: the state file is unusable (corrupt, another trail)
)

const auditWitnessUsage = `Usage: loggate audit witness --server URL --state FILE [--max-age D] [--token-file F]

Keeps an outside copy of the audit trail's newest signed checkpoint in FILE
and, each run, proves that the trail extends it: it fetches the newest
checkpoint (GET /api/v1/audit/checkpoint), the key history (/keys) and a
consistency proof from the kept checkpoint (/consistency); these need no
token. The first run trusts what it sees and stores it.

When the trail does not extend FILE (rolled back or truncated, history
rewritten even if re-signed with the stored key, signed by a key outside
the published history, or, with --max-age, a checkpoint older than that)
it prints why, leaves FILE unchanged, and reports an audit.witness_failed
event to the server with the token (--token-file or $LOGGATE_TOKEN; any
user or service account may report).

Exit codes: 0 the trail extends FILE (FILE updated, mode 0600, atomically);
1 it does not (the message says rollback, truncated, fork or key);
2 usage; 5 the server could not be read (nothing checked, FILE unchanged);
6 FILE is corrupt or belongs to another trail (FILE unchanged).
Run it from cron or CI, keeping FILE where the gateway cannot write.
`

func runAuditWitness(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	set := flag.NewFlagSet("audit witness", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, auditWitnessUsage); set.PrintDefaults() }
	server := set.String("server", getenv("LOGGATE_SERVER"), "gateway URL (else $LOGGATE_SERVER)")
	statePath := set.String("state", "", "the witness state file (created on the first run)")
	tokenFile := set.String("token-file", "", "bearer token for reporting a failure (else $LOGGATE_TOKEN)")
	maxAge := set.Duration("max-age", 0, "fail when the newest checkpoint is older than this (e.g. 1h; the gateway signs one every --audit-checkpoint-interval, also when idle)")
	timeout := set.Duration("timeout", 30*time.Second, "give up on the server after this long")
	if err := set.Parse(args); err != nil {
		return flagErr(err)
	}
	if set.NArg() > 0 {
		return exitcode.Usagef("audit witness takes only flags (got %q)", set.Arg(0))
	}
	if *statePath == "" {
		return exitcode.Usagef("--state FILE is required")
	}
	u, err := url.Parse(*server)
	if *server == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return exitcode.Usagef("--server must be the gateway's http(s) URL (got %q)", *server)
	}
	token := strings.TrimSpace(getenv("LOGGATE_TOKEN"))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return exitcode.Usagef("--token-file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	prev, err := witness.LoadState(*statePath)
	if err != nil {
		return &exitcode.Error{Code: exitWitnessState, Err: err}
	}
	src := &witness.HTTPSource{BaseURL: u.String(), Token: token, Client: &http.Client{Timeout: *timeout}}
	res, err := witness.Check(ctx, src, prev, witness.Options{Server: u.String(), MaxAge: *maxAge})
	var f *witness.Failure
	switch {
	case errors.As(err, &f):
		fmt.Fprintln(stderr, "WITNESS FAILED:", f.Msg)
		fmt.Fprintf(stderr, "%s left unchanged\n", *statePath)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), *timeout)
		defer cancel()
		if id, rerr := src.ReportFailure(rctx, f); rerr != nil {
			fmt.Fprintln(stderr, "not reported to the server:", rerr)
		} else {
			fmt.Fprintln(stderr, "reported to the server as audit event", id)
		}
		return &exitcode.Error{Code: exitcode.Failure}
	case errors.Is(err, witness.ErrState):
		return &exitcode.Error{Code: exitWitnessState, Err: fmt.Errorf("%w (%s left unchanged)", err, *statePath)}
	case err != nil:
		return &exitcode.Error{Code: exitWitnessUnreachable, Err: fmt.Errorf("nothing checked: %w", err)}
	}
	if err := res.State.Save(*statePath); err != nil {
		return err
	}
	switch {
	case res.First:
		fmt.Fprintf(stdout, "first run: trusting the checkpoint of %d events (origin %s, key %s); stored in %s\n",
			res.State.Size, res.State.Origin, res.State.KeyID, *statePath)
	default:
		for _, k := range res.NewKeys {
			fmt.Fprintln(stdout, "the key history gained a key (a rotation):", k)
		}
		fmt.Fprintf(stdout, "OK: the trail extends what this witness saw: %d events (+%d), root %s\n",
			res.State.Size, res.Grew, res.State.RootHash)
	}
	return nil
}
