package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func requestCommand() *command {
	return &command{
		name:    "request",
		summary: "ask for time-boxed access to a log stream",
		usage:   `loggate request SERVICE/ENV --for 30m --reason "..." [--break-glass] [--wait] [tail flags]`,
		help: `Asks for access to one stream for a while and prints the policy's decision in
plain words: approved (with the grant to tail), pending (and who must approve),
or denied (and why; exit code 3).

With --wait the command waits for the approvers, shows who approved, then tails
the stream (the tail flags apply). Ctrl-C while waiting offers to cancel the
request. --break-glass skips approval where policy allows it; security reviews
every break-glass access afterwards.`,
		example: `  loggate request checkout/prod --for 30m --reason "INC-4211 checkout 502s" --wait
  loggate request checkout/staging --for 2h --reason "debugging retries"
  loggate request checkout/staging --for 20m --reason "acme's carts" --raise-level debug --scope tenant=acme --wait
  loggate request checkout/prod --for 15m --reason "INC-4212 outage, no approver awake" --break-glass --wait --level warn`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("for", "30m", "how long you need access (Go duration)")
			fs.String("reason", "", "why: an incident or ticket id and a few words (required)")
			fs.Bool("break-glass", false, "emergency access without approval, where policy allows it")
			fs.Bool("wait", false, "wait for approval, then tail the stream")
			fs.String("raise-level", "", "have the stream's services log at this level (debug or trace) while you watch")
			fs.String("scope", "", "with --raise-level, only for records with these attributes: tenant=acme[,k=v]")
			addTailFlags(fs)
		},
		run: (*cli).request,
	}
}

func (c *cli) request(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) != 1 {
		return exitcode.Usagef(`request needs one stream: loggate request checkout/prod --for 30m --reason "INC-1234 ..."`)
	}
	service, env, ok := splitStream(args[0])
	if !ok {
		return exitcode.Usagef("stream %q must be SERVICE/ENV, e.g. checkout/prod", args[0])
	}
	dur, err := durationFlag(fs, "for", "30m or 1h30m")
	if err != nil {
		return err
	}
	reason, err := requiredFlag(fs, "reason", `--reason is required: say why you need the logs, e.g. --reason "INC-4211 checkout 502s"`)
	if err != nil {
		return err
	}
	a, topts, err := c.tailSession(ctx, fs)
	if err != nil {
		return err
	}
	body := map[string]any{"service": service, "env": env, "duration": dur.String(), "reason": reason,
		"break_glass": flagString(fs, "break-glass") == "true"}
	if lvl := flagString(fs, "raise-level"); lvl != "" {
		body["level"] = lvl
	}
	if sc := strings.TrimSpace(flagString(fs, "scope")); sc != "" {
		scope := map[string]string{}
		for _, kv := range strings.Split(sc, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return exitcode.Usagef("--scope %q must be key=value pairs separated by commas, e.g. tenant=acme", sc)
			}
			scope[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		body["scope"] = scope
	}
	var req api.Request
	if err := a.do(ctx, http.MethodPost, "/api/v1/requests", body, &req); err != nil {
		return err
	}
	if err := c.printDecision(req); err != nil {
		return err
	}
	if flagString(fs, "wait") != "true" {
		return nil
	}
	return c.waitAndTail(ctx, a, req, topts)
}

// printDecision says what happened to a new request; a denial is exit 3.
func (c *cli) printDecision(req api.Request) error {
	w := c.stdout
	switch req.State {
	case "approved":
		how := "automatically by policy"
		if req.BreakGlass {
			how = "by break-glass; security will review this access"
		}
		fmt.Fprintf(w, "Approved %s: %s for %s.\n", how, req.Stream(), req.Duration)
		if g := req.Grant; g != nil {
			fmt.Fprintf(w, "Grant %s is active until %s. Tail it with: loggate tail %s\n", g.ID, fmtClock(g.ExpiresAt), g.ID)
		}
	case "pending":
		fmt.Fprintf(w, "Request %s for %s (%s) is pending: it needs %s.\n", req.ID, req.Stream(), req.Duration, approvalsWanted(req))
		if req.PendingUntil != nil {
			fmt.Fprintf(w, "It lapses if nobody decides by %s. Approvers run: loggate approve %s\n", fmtClock(*req.PendingUntil), req.ID)
		}
	case "denied":
		fmt.Fprintf(w, "Denied: %s for %s.\n", req.Stream(), req.Duration)
		for _, r := range req.Decision.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
		return &exitcode.Error{Code: exitcode.Denied}
	default:
		fmt.Fprintf(w, "Request %s for %s is %s.\n", req.ID, req.Stream(), req.State)
	}
	return nil
}

func approvalsWanted(req api.Request) string {
	n := req.ApprovalsNeeded
	if n == 0 {
		n = req.Decision.ApprovalsRequired
	}
	word := "approval"
	if n != 1 {
		word = "approvals"
	}
	s := fmt.Sprintf("%d %s", n, word)
	if g := req.Decision.ApproverGroups; len(g) > 0 {
		s += " from " + strings.Join(g, " or ")
	}
	return s
}

func waitCommand() *command {
	return &command{
		name:    "wait",
		summary: "wait for a pending request, then tail",
		usage:   "loggate wait REQUEST [tail flags]",
		help: `Waits for a pending request of yours to be decided, shows who approved it,
then tails the stream. Denied requests exit with code 3.`,
		example: "  loggate wait req_01HXYZ --level warn",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			addTailFlags(fs)
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("wait needs a request id: loggate wait REQUEST")
			}
			a, topts, err := c.tailSession(ctx, fs)
			if err != nil {
				return err
			}
			var req api.Request
			if err := a.do(ctx, http.MethodGet, "/api/v1/requests/"+pathEscape(args[0]), nil, &req); err != nil {
				return err
			}
			return c.waitAndTail(ctx, a, req, topts)
		},
	}
}

// waitAndTail polls a request until it is decided, then tails its grant.
func (c *cli) waitAndTail(ctx context.Context, a *apiClient, req api.Request, topts tailOptions) error {
	waited := req.State == "pending"
	if waited {
		fmt.Fprintf(c.stderr, "Waiting for %s... (Ctrl-C to stop)\n", approvalsWanted(req))
		var err error
		if req, err = c.waitDecision(ctx, a, req); err != nil {
			return err
		}
	}
	switch req.State {
	case "approved":
		if req.Grant == nil {
			return fmt.Errorf("request %s is approved but has no grant; see `loggate grants`", req.ID)
		}
		return c.tailGrant(ctx, a, req.Grant.ID, topts)
	case "denied":
		switch {
		case waited: // the approvers' verdicts were printed while waiting
		case req.ClosedBy != nil:
			fmt.Fprintf(c.stdout, "Denied by %s", label(*req.ClosedBy))
			if req.ClosedComment != "" {
				fmt.Fprintf(c.stdout, ": %q", req.ClosedComment)
			}
			fmt.Fprintln(c.stdout, ".")
		default:
			for _, r := range req.Decision.Reasons {
				fmt.Fprintf(c.stdout, "Denied: %s\n", r)
			}
		}
		return &exitcode.Error{Code: exitcode.Denied}
	case "lapsed":
		return fmt.Errorf("request %s lapsed: nobody decided in time; ask again or ping an approver", req.ID)
	default:
		return fmt.Errorf("request %s is %s", req.ID, req.State)
	}
}

func (c *cli) waitDecision(ctx context.Context, a *apiClient, req api.Request) (api.Request, error) {
	every := c.pollEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	seen := len(req.Approvals)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return req, c.offerCancel(a, req)
		case <-tick.C:
		}
		var cur api.Request
		if err := a.do(ctx, http.MethodGet, "/api/v1/requests/"+pathEscape(req.ID), nil, &cur); err != nil {
			if ctx.Err() != nil {
				return req, c.offerCancel(a, req)
			}
			var ce *exitcode.Error
			if errors.As(err, &ce) && ce.Code != exitcode.Failure {
				return req, err
			}
			// Keep waiting through blips, but not forever.
			if failures++; failures > 30 {
				return req, err
			}
			continue
		}
		failures = 0
		for _, ap := range cur.Approvals[min(seen, len(cur.Approvals)):] {
			verb := "Approved"
			if ap.Verdict == "deny" {
				verb = "Denied"
			}
			fmt.Fprintf(c.stdout, "%s by %s", verb, label(ap.Approver))
			if ap.Comment != "" {
				fmt.Fprintf(c.stdout, ": %q", ap.Comment)
			}
			fmt.Fprintln(c.stdout, ".")
		}
		seen = len(cur.Approvals)
		if cur.State != "pending" {
			return cur, nil
		}
		req = cur
	}
}

// offerCancel runs after Ctrl-C while waiting: it asks (on a terminal) or
// decides (otherwise: cancel) whether to withdraw the pending request.
func (c *cli) offerCancel(a *apiClient, req api.Request) error {
	cancel := true
	if c.stdinInteractive() {
		fmt.Fprintf(c.stderr, "\nStopped waiting. Cancel request %s too? [Y/n] ", req.ID)
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			line = ""
		}
		ans := strings.ToLower(strings.TrimSpace(line))
		cancel = ans == "" || ans == "y" || ans == "yes"
	} else {
		fmt.Fprintln(c.stderr)
	}
	if !cancel {
		fmt.Fprintf(c.stderr, "Request %s is still pending; resume with: loggate wait %s\n", req.ID, req.ID)
		return &exitcode.Error{Code: exitcode.Aborted}
	}
	ctx, done := context.WithTimeout(context.Background(), 15*time.Second)
	defer done()
	if err := a.do(ctx, http.MethodPost, "/api/v1/requests/"+pathEscape(req.ID)+"/cancel", map[string]string{}, nil); err != nil {
		return fmt.Errorf("could not cancel request %s: %w", req.ID, err)
	}
	fmt.Fprintf(c.stderr, "Cancelled request %s.\n", req.ID)
	return &exitcode.Error{Code: exitcode.Aborted}
}

func cancelCommand() *command {
	return &command{
		name:    "cancel",
		summary: "withdraw your pending request",
		usage:   "loggate cancel REQUEST",
		help:    "Withdraws a request of yours that nobody has decided yet.",
		example: "  loggate cancel req_01HXYZ",
		flags:   addServerFlags,
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("cancel needs a request id: loggate cancel REQUEST")
			}
			req, err := sessionDo[api.Request](ctx, c, fs, http.MethodPost, "/api/v1/requests/"+pathEscape(args[0])+"/cancel", map[string]string{})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Cancelled request %s for %s.\n", req.ID, req.Stream())
			return nil
		},
	}
}

func verdictCommand(verdict string) *command {
	past, need := "Approved", "[--comment TEXT]"
	help := `Approves a pending request as one of its approvers. You cannot approve your
own request. When enough approvals are in, the grant is issued at once.`
	example := `  loggate requests --pending
  loggate approve req_01HXYZ --comment "ok for INC-4211"`
	if verdict == "deny" {
		past, need = "Denied", "--comment TEXT"
		help = "Denies a pending request; the comment (required) tells the requester why."
		example = `  loggate deny req_01HXYZ --comment "use staging first"`
	}
	return &command{
		name:    verdict,
		summary: strings.ToLower(past[:1]) + verdict[1:] + " a pending request",
		usage:   "loggate " + verdict + " REQUEST " + need,
		help:    help,
		example: example,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("comment", "", "a note for the requester and the audit trail")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("%s needs a request id: loggate %s REQUEST", verdict, verdict)
			}
			comment := strings.TrimSpace(flagString(fs, "comment"))
			if verdict == "deny" && comment == "" {
				return exitcode.Usagef(`deny needs --comment saying why, e.g. --comment "use staging first"`)
			}
			req, err := sessionDo[api.Request](ctx, c, fs, http.MethodPost, "/api/v1/requests/"+pathEscape(args[0])+"/"+verdict,
				map[string]string{"comment": comment})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s request %s: %s for %s, asked by %s.\n", past, req.ID, req.Stream(), req.Duration, label(req.Requester))
			switch {
			case req.State == "approved" && req.Grant != nil:
				fmt.Fprintf(c.stdout, "Grant %s is active until %s.\n", req.Grant.ID, fmtClock(req.Grant.ExpiresAt))
			case req.State == "pending":
				fmt.Fprintf(c.stdout, "Still pending: it needs %s more.\n", approvalsWanted(req))
			}
			return nil
		},
	}
}

func approveCommand() *command { return verdictCommand("approve") }
func denyCommand() *command    { return verdictCommand("deny") }

func requestsCommand() *command {
	return &command{
		name:    "requests",
		summary: "list your requests, or those waiting for you",
		usage:   "loggate requests [--pending] [--all] [--state STATE] [--output text|json|csv]",
		help: `Lists your own requests; with --pending, the requests you may approve (your
approver inbox); with --all, everyone's (security only).`,
		example: `  loggate requests
  loggate requests --pending
  loggate requests --all --state denied --output csv > denied.csv`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.Bool("pending", false, "requests waiting for your approval")
			fs.Bool("all", false, "everyone's requests (security)")
			fs.String("state", "", "only this state: pending, approved, denied, cancelled, lapsed")
			fs.Int("limit", 100, "at most this many")
		},
		outputs: []string{"text", "json", "csv"},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			format := flagString(fs, "output")
			q := url.Values{}
			if st := flagString(fs, "state"); st != "" {
				q.Set("state", st)
			}
			if flagString(fs, "pending") == "true" {
				q.Set("state", "pending")
				q.Set("scope", "approvable")
			}
			if flagString(fs, "all") == "true" {
				q.Set("scope", "all")
			}
			return listing[api.Request]{path: "/api/v1/requests", query: q, limit: flagInt(fs, "limit"), table: requestsTable,
				empty: "No requests."}.show(ctx, c, fs, format)
		},
	}
}

func requestsTable(reqs []api.Request, raws []json.RawMessage) *table {
	t := &table{header: []string{"ID", "STATE", "STREAM", "FOR", "REQUESTER", "APPROVALS", "BREAK_GLASS", "CREATED", "REASON"}}
	for i, r := range reqs {
		approvals := 0
		for _, ap := range r.Approvals {
			if ap.Verdict == "approve" {
				approvals++
			}
		}
		t.add(raws[i], r.ID, r.State, r.Stream(), r.Duration, short(r.Requester),
			fmt.Sprintf("%d/%d", approvals, r.Decision.ApprovalsRequired), yesNo(r.BreakGlass), fmtTime(r.CreatedAt), r.Reason)
	}
	return t
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
