package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/audit/sink"
	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

const policyUsage = `Usage:
  loggate policy test [DIR]             run the Rego unit tests (*_test.rego) of DIR (default: the built-in policies)
  loggate policy eval --input FILE [--policies DIR]
                                        show the decision for an input document (JSON; see policies/README.md)

Examples:
  loggate policy test ./policies
  echo '{"action":"request","requester":{"id":"x","groups":["engineers"]},"service":"checkout","env":"prod","duration":"30m","reason":"INC-1"}' > in.json
  loggate policy eval --input in.json
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return &exitcode.Error{Code: exitcode.Usage}
	}
	switch args[0] {
	case "test":
		fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { fmt.Fprint(stderr, policyUsage) }
		if err := fs.Parse(args[1:]); err != nil {
			return flagErr(err)
		}
		fsys := policiesFS(fs.Arg(0))
		results, err := policy.RunTests(ctx, fsys)
		if err != nil {
			return fmt.Errorf("policy test: %w", err)
		}
		failed := 0
		for _, r := range results {
			status := "PASS"
			if !r.Pass {
				status = "FAIL"
				failed++
			}
			fmt.Fprintf(stdout, "%s  %s.%s (%s)\n", status, r.Package, r.Name, r.Duration.Round(time.Microsecond))
			if r.Fail != "" {
				fmt.Fprintf(stdout, "      %s\n", r.Fail)
			}
		}
		fmt.Fprintf(stdout, "%d tests, %d failed\n", len(results), failed)
		if failed > 0 || len(results) == 0 {
			return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("%d of %d policy tests failed", failed, len(results))}
		}
		return nil
	case "eval":
		fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { fmt.Fprint(stderr, policyUsage) }
		input := fs.String("input", "", "JSON input document (- for stdin)")
		dir := fs.String("policies", "", "policy directory (default: built-in)")
		if err := fs.Parse(args[1:]); err != nil {
			return flagErr(err)
		}
		if *input == "" {
			return exitcode.Usagef("policy eval needs --input FILE")
		}
		var b []byte
		var err error
		if *input == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*input)
		}
		if err != nil {
			return err
		}
		var in evalInput
		if err := json.Unmarshal(b, &in); err != nil {
			return exitcode.Usagef("input %s: %v", *input, err)
		}
		eng, err := policy.New(ctx, policy.Config{FS: policiesFS(*dir)})
		if err != nil {
			return err
		}
		pin, err := in.toPolicy()
		if err != nil {
			return exitcode.Usagef("input: %v", err)
		}
		dec, derr := eng.Decide(ctx, pin)
		out := map[string]any{"decision": evalDecision(dec), "auto_approve": dec.AutoApprove(), "max_duration": dec.MaxDuration.String(),
			"max_lookback": dec.MaxLookback.String(), "pending_timeout": dec.PendingTimeout.String()}
		if derr != nil {
			out["error"] = derr.Error()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		if !dec.Allow {
			return &exitcode.Error{Code: exitcode.Denied}
		}
		return nil
	}
	fmt.Fprint(stderr, policyUsage)
	return exitcode.Usagef("unknown policy command %q", args[0])
}

// evalDecision is a decision in the JSON shape of the API's request
// "decision" (snake_case, durations in Go syntax), for `policy eval`.
func evalDecision(d policy.Decision) map[string]any {
	reasons, groups := d.Reasons, d.ApproverGroups
	if reasons == nil {
		reasons = []string{}
	}
	if groups == nil {
		groups = []string{}
	}
	return map[string]any{"id": d.ID, "policy_revision": d.Revision, "allow": d.Allow, "auto_approve": d.AutoApprove(),
		"reasons": reasons, "approvals_required": d.ApprovalsRequired, "approver_groups": groups,
		"max_duration": d.MaxDuration.String(), "max_lookback": d.MaxLookback.String(),
		"pending_timeout": d.PendingTimeout.String(), "break_glass": d.BreakGlass,
		"break_glass_allowed": d.BreakGlassAllowed, "reason_pattern": d.ReasonPattern,
		"min_reason_length": d.MinReasonLength}
}

// evalInput is the JSON form of policy.Input for `policy eval`.
type evalInput struct {
	Action     string         `json:"action"`
	Requester  policy.Subject `json:"requester"`
	Service    string         `json:"service"`
	Env        string         `json:"env"`
	Duration   string         `json:"duration"`
	Reason     string         `json:"reason"`
	BreakGlass bool           `json:"break_glass"`
	Time       time.Time      `json:"time"`
}

func (e evalInput) toPolicy() (policy.Input, error) {
	in := policy.Input{Action: e.Action, Requester: e.Requester, Service: e.Service, Env: e.Env, Reason: e.Reason,
		BreakGlass: e.BreakGlass, Time: e.Time}
	if in.Action == "" {
		in.Action = "request"
	}
	if in.Time.IsZero() {
		in.Time = time.Now()
	}
	if e.Duration != "" {
		d, err := time.ParseDuration(e.Duration)
		if err != nil {
			return in, err
		}
		in.Duration = d
	}
	return in, nil
}

// policiesFS is DIR on disk, or the built-in policies.
func policiesFS(dir string) iofs.FS {
	if dir == "" {
		return policies.FS
	}
	return os.DirFS(dir)
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return &exitcode.Error{Code: exitcode.Usage, Err: err}
}

const auditVerifyUsage = `Usage: loggate audit verify --data DIR [--checkpoint FILE] [--json]
       loggate audit verify --redis URL [--audit-signing-key-file FILE] [--json]

Verifies the audit trail offline: every event's hash from its stored bytes,
the hash chain, the gapless sequence, the Merkle tree and every signed
checkpoint. With --checkpoint (a checkpoint exported earlier, e.g. from
GET /api/v1/audit/checkpoint, or a --audit-checkpoint-file, whose largest
checkpoint is used), also detects truncation and rollback of the trail.
With --redis, checks the chain the replicas share in Redis instead (seqs,
hashes, the chain head, and the Merkle root against the latest signed
checkpoint; its signature too with --audit-signing-key-file).
Exits 0 when intact, 1 when any problem is found.
`

func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	set := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, auditVerifyUsage); set.PrintDefaults() }
	data := set.String("data", "./loggate-data", "the gateway's data directory (or its audit/ subdirectory)")
	cpFile := set.String("checkpoint", "", "an exported checkpoint file")
	asJSON := set.Bool("json", false, "print the report as JSON")
	redisURL := set.String("redis", getenv("LOGGATE_REDIS"), "verify the trail shared by replicas in this Redis (redis:// or rediss:// URL)")
	keyFile := set.String("audit-signing-key-file", getenv("LOGGATE_AUDIT_SIGNING_KEY_FILE"), "with --redis: the replicas' checkpoint signing key, to check the checkpoint's signature")
	if err := set.Parse(args); err != nil {
		return flagErr(err)
	}
	if *redisURL != "" {
		return runAuditVerifyRedis(ctx, *redisURL, *keyFile, *asJSON, stdout)
	}
	dir := *data
	if _, err := os.Stat(filepath.Join(dir, "audit", "audit.db")); err == nil {
		dir = filepath.Join(dir, "audit")
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.db")); err != nil {
		return fmt.Errorf("no audit trail in %s: %w", *data, err)
	}
	var cp []byte
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			return err
		}
		cp = checkpointBytes(b)
	}
	rep, err := audit.Verify(ctx, dir, cp)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintf(stdout, "events: %d (last seq %d), checkpoints checked: %d, signed head size: %d\n",
			rep.Events, rep.LastSeq, rep.Checkpoints, rep.Head)
		if rep.Exported > 0 {
			fmt.Fprintf(stdout, "exported checkpoint size: %d\n", rep.Exported)
		}
		fmt.Fprintf(stdout, "root: %s\n", rep.Root)
		if rep.Spooled > 0 {
			fmt.Fprintf(stdout, "appended late from a replica's spool: %d (their details.spooled_at says when they were spooled)\n", rep.Spooled)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "PROBLEM %-10s seq %d: %s\n", p.Kind, p.Seq, p.Detail)
		}
		if rep.MoreProblems > 0 {
			fmt.Fprintf(stdout, "... and %d more problems\n", rep.MoreProblems)
		}
	}
	if err != nil {
		if !*asJSON {
			fmt.Fprintln(stdout, "FAILED:", err)
		}
		return &exitcode.Error{Code: exitcode.Failure}
	}
	if !*asJSON {
		fmt.Fprintln(stdout, "OK: audit trail intact")
	}
	return nil
}

// checkpointBytes accepts a raw checkpoint note or the JSON the API returns.
// A saved note may carry extra trailing newlines (`jq -r .note > FILE` adds
// one, editors add CRLF): a note ends with exactly one newline, so trailing
// white space is normalised to that.
func checkpointBytes(b []byte) []byte {
	var cp audit.Checkpoint
	if json.Unmarshal(b, &cp) == nil && len(cp.Bytes()) > 0 {
		return cp.Bytes()
	}
	cps, err := audit.ReadCheckpointLog(bytes.NewReader(b))
	if err != nil || len(cps) == 0 {
		// An audit sink file, with the checkpoints the gateway pushed
		// (--audit-sink-checkpoints) among the events.
		cps, err = sink.ReadCheckpoints(bytes.NewReader(b))
	}
	if err == nil && len(cps) > 0 {
		// A --audit-checkpoint-file or sink file: its largest checkpoint
		// (the newest of equals). Not simply the last line: a gateway
		// restarted on a rolled-back copy appends its smaller checkpoints
		// after it.
		best := cps[0]
		for _, cp := range cps[1:] {
			if cp.Size >= best.Size {
				best = cp
			}
		}
		return best.Bytes()
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return append(bytes.TrimRight(b, " \t\r\n"), '\n')
}
