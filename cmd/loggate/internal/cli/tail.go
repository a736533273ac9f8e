package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func tailCommand() *command {
	return &command{
		name:    "tail",
		summary: "follow a log stream you hold a grant for",
		usage:   "loggate tail GRANT|SERVICE/ENV [--level L] [--grep RE] [--exclude RE] [--since 10m|--lines N] [--output text|json]",
		help: `Follows the live stream of a grant, like kubectl logs -f. With SERVICE/ENV it
uses your active grant for that stream.

Lines go to stdout: coloured levels on a terminal, plain text when piped, one
JSON object per line with --output json. Notices (dropped lines, gaps,
redactions, reconnects, the coming expiry) go to stderr. After a network blip
the tail reconnects and resumes after the last line it printed.

Exit codes: 0 when the grant expires, 4 when it is revoked or had already
ended, 130 on Ctrl-C.`,
		example: `  loggate tail checkout/prod --level warn
  loggate tail grt_01HXYZ --grep 'order=ord_12' --lines 200
  loggate tail checkout/prod --output json | jq -r .message`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			addTailFlags(fs)
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("tail needs a grant id or SERVICE/ENV: loggate tail checkout/prod")
			}
			a, opts, err := c.tailSession(ctx, fs)
			if err != nil {
				return err
			}
			grantID := args[0]
			if service, env, ok := splitStream(args[0]); ok {
				if grantID, err = c.activeGrant(ctx, a, service, env); err != nil {
					return err
				}
			}
			return c.tailGrant(ctx, a, grantID, opts)
		},
	}
}

// attrFlags collects repeated --attr K=V.
type attrFlags map[string]string

func (a attrFlags) String() string { return "" }
func (a attrFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	a[k] = val
	return nil
}

func addTailFlags(fs *flag.FlagSet) {
	fs.String("level", "", "minimum level: trace, debug, info, warn, error, fatal")
	fs.String("grep", "", "only lines whose message matches this regular expression")
	fs.String("exclude", "", "drop lines whose message matches this regular expression")
	fs.Var(attrFlags{}, "attr", "only lines with attribute `KEY=VALUE` (repeatable)")
	fs.String("since", "", "first show lines from this long ago (e.g. 10m), within the grant's lookback")
	fs.Int("lines", 0, "first show the last N lines, within the grant's lookback")
	fs.String("output", "text", "text or json")
	fs.String("color", "auto", "colour levels: auto (on a terminal), always, never")
}

type tailOptions struct {
	level, grep, exclude string
	attrs                map[string]string
	since                string
	lines                int
	output               string
	color                string
}

// tailSession reads the tail flags, then signs in: the start of every
// command that may end in a tail.
func (c *cli) tailSession(ctx context.Context, fs *flag.FlagSet) (*apiClient, tailOptions, error) {
	opts, err := tailOptionsFrom(fs)
	if err != nil {
		return nil, opts, err
	}
	a, err := c.session(ctx, fs)
	return a, opts, err
}

func tailOptionsFrom(fs *flag.FlagSet) (tailOptions, error) {
	o := tailOptions{level: flagString(fs, "level"), grep: flagString(fs, "grep"), exclude: flagString(fs, "exclude"),
		since: flagString(fs, "since"), output: flagString(fs, "output"), color: flagString(fs, "color")}
	if f := fs.Lookup("attr"); f != nil {
		o.attrs = f.Value.(attrFlags)
	}
	if f := fs.Lookup("lines"); f != nil {
		o.lines = f.Value.(flag.Getter).Get().(int)
	}
	switch o.level {
	case "", "trace", "debug", "info", "warn", "error", "fatal":
	default:
		return o, exitcode.Usagef("--level must be one of trace, debug, info, warn, error, fatal")
	}
	if err := checkOutput(o.output, "text", "json"); err != nil {
		return o, err
	}
	if o.color != "auto" && o.color != "always" && o.color != "never" {
		return o, exitcode.Usagef("--color must be auto, always or never")
	}
	if o.lines < 0 || o.lines > 10000 {
		return o, exitcode.Usagef("--lines must be from 0 to 10000")
	}
	if o.since != "" {
		if d, err := time.ParseDuration(o.since); err != nil || d <= 0 {
			if _, err := time.Parse(time.RFC3339, o.since); err != nil {
				return o, exitcode.Usagef(`--since must be a duration like 10m or an RFC 3339 time`)
			}
		}
	}
	return o, nil
}

// activeGrant finds the caller's active grant for a stream, or says how to get one.
func (c *cli) activeGrant(ctx context.Context, a *apiClient, service, env string) (string, error) {
	raws, err := a.listAll(ctx, "/api/v1/grants", url.Values{"state": {"active"}}, 0)
	if err != nil {
		return "", err
	}
	grants, err := decodeEach[api.Grant](raws)
	if err != nil {
		return "", err
	}
	var best *api.Grant
	for i := range grants {
		g := &grants[i]
		if g.Service == service && g.Env == env && g.State == "active" && (best == nil || g.ExpiresAt.After(best.ExpiresAt)) {
			best = g
		}
	}
	if best != nil {
		return best.ID, nil
	}
	stream := service + "/" + env
	pending, err := a.listAll(ctx, "/api/v1/requests", url.Values{"state": {"pending"}, "scope": {"mine"}}, 0)
	if err == nil {
		reqs, _ := decodeEach[api.Request](pending)
		for _, r := range reqs {
			if r.Stream() == stream {
				return "", fmt.Errorf("your request %s for %s is still pending: wait for it with `loggate wait %s`", r.ID, stream, r.ID)
			}
		}
	}
	return "", fmt.Errorf("no active grant for %s: ask for one with `loggate request %s --for 30m --reason \"...\" --wait`", stream, stream)
}

// tailRun is the state of one `loggate tail` across reconnects. Only the
// goroutine running tailGrant touches it, except warn (see warnLater).
type tailRun struct {
	c        *cli
	grantID  string
	opts     tailOptions
	color    bool
	lastSeq  int64     // highest seq printed
	started  time.Time // first connect, for a resume before any line arrived
	expires  time.Time
	redacted map[string]bool
	endMsg   string // message of the server's "end"
	// subscribed is set after the first "subscribed" message.
	subscribed bool
	// renewed is set when the token was renewed since the last good connection.
	renewed bool

	mu        sync.Mutex // guards stderr writes and warnTimer
	warnTimer *time.Timer
}

func (t *tailRun) notef(format string, a ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.c.stderr, "loggate: "+format+"\n", a...)
}

// query builds the tail URL's query: the filter, then the backfill for the
// first connection or the resume point for later ones.
func (t *tailRun) query(resume bool) url.Values {
	q := url.Values{}
	o := t.opts
	for k, v := range map[string]string{"level": o.level, "grep": o.grep, "exclude": o.exclude} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range o.attrs {
		q.Set("attr."+k, v)
	}
	switch {
	case resume && t.lastSeq > 0:
		q.Set("after", strconv.FormatInt(t.lastSeq, 10))
	case resume && o.since == "" && o.lines == 0:
		// Nothing printed yet: ask for what arrived since the first connect.
		q.Set("since", t.started.UTC().Format(time.RFC3339Nano))
	default:
		if o.since != "" {
			q.Set("since", o.since)
		}
		if o.lines > 0 {
			q.Set("lines", strconv.Itoa(o.lines))
		}
	}
	return q
}

// tailGrant follows a grant until it ends, reconnecting after blips.
func (c *cli) tailGrant(ctx context.Context, a *apiClient, grantID string, opts tailOptions) error {
	t := &tailRun{c: c, grantID: grantID, opts: opts, started: c.clock(), redacted: map[string]bool{}}
	t.color = opts.output == "text" && (opts.color == "always" ||
		(opts.color == "auto" && isTerminal(c.stdout) && c.getenv("NO_COLOR") == "" && c.getenv("TERM") != "dumb"))
	defer t.stopWarn()
	backoff := 250 * time.Millisecond
	var failingSince time.Time
	for attempt := 0; ; attempt++ {
		conn, err := t.dial(ctx, a, attempt > 0)
		if err == nil {
			failingSince = time.Time{}
			backoff = 250 * time.Millisecond
			t.renewed = false
			err = t.serve(ctx, conn)
			if err == nil {
				return nil
			}
		}
		var retry *retryableError
		if !errors.As(err, &retry) {
			return err
		}
		if ctx.Err() != nil {
			return &exitcode.Error{Code: exitcode.Aborted}
		}
		now := c.clock()
		if failingSince.IsZero() {
			failingSince = now
		}
		if now.Sub(failingSince) > 5*time.Minute {
			return fmt.Errorf("lost the tail of %s and could not reconnect for 5 minutes: %v", grantID, retry.err)
		}
		t.notef("%v; reconnecting in %s%s", retry.err, backoff, t.resumeNote())
		select {
		case <-ctx.Done():
			return &exitcode.Error{Code: exitcode.Aborted}
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (t *tailRun) resumeNote() string {
	if t.lastSeq > 0 {
		return fmt.Sprintf(" (resuming after line %d)", t.lastSeq)
	}
	return ""
}

// retryableError marks a failure the tail recovers from by reconnecting.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
