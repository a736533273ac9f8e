package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func auditReplayCommand() *command {
	return &command{
		name:    "audit replay",
		summary: "show what a closed view showed, verified against its digest (security)",
		usage:   "loggate audit replay VIEW_ID --reason TEXT [--output text|json]",
		help: `Rebuilds the lines a closed view delivered (the view_id is in its
stream.opened and stream.closed events, and in the tail's first frame) from the
logs the gateway still keeps, and checks them against the digest the view
recorded. Exits 0 when verified, 1 when the replay is partial or does not match
(what is missing and why is printed). For security and loggate-admins; every
replay is audited with its reason.`,
		example: `  loggate audit replay view_01HXYZ --reason "INC-4242: what did alice see?"
  loggate audit replay view_01HXYZ --reason "INC-4242" --output json | jq -c 'select(.type=="entries")'`,
		outputs: []string{"text", "json"}, // the lines, or the NDJSON frames as sent
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("reason", "", "why you replay this view (required; recorded)")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("audit replay needs a view id: loggate audit replay VIEW_ID --reason TEXT")
			}
			reason, err := requiredFlag(fs, "reason", "--reason is required: say why you replay this view")
			if err != nil {
				return err
			}
			format := flagString(fs, "output")
			raw, err := sessionDo[[]byte](ctx, c, fs, http.MethodGet, api.ReplayPath(pathEscape(args[0]))+"?reason="+url.QueryEscape(reason), nil)
			if err != nil {
				return err
			}
			return writeReplay(c, raw, format)
		},
	}
}

// writeReplay prints a replay's frames and judges its last line.
func writeReplay(c *cli, raw []byte, format string) error {
	var res *api.ReplayResult
	for line := range bytes.Lines(raw) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var f api.TailFrame
		if err := json.Unmarshal(line, &f); err != nil {
			return fmt.Errorf("unexpected replay line from the server: %w", err)
		}
		if format == "json" {
			fmt.Fprintf(c.stdout, "%s\n", line)
		}
		switch f.Type {
		case api.FrameEntries:
			if format == "text" {
				for _, e := range f.Entries {
					var entry api.Entry
					if err := json.Unmarshal(e, &entry); err == nil {
						fmt.Fprint(c.stdout, formatEntry(entry, false))
					}
				}
			}
		case api.FrameReplay:
			res = new(api.ReplayResult)
			if err := json.Unmarshal(line, res); err != nil {
				return fmt.Errorf("unexpected replay result from the server: %w", err)
			}
		}
	}
	if res == nil {
		return &exitcode.Error{Code: exitcode.Failure, Err: errors.New("the replay ended early: NOT verified")}
	}
	who := res.Viewer
	if who == "" {
		who = "the viewer"
	}
	// What the server says (the viewer's name comes from the identity
	// provider) is made inert on a terminal, like the log lines.
	fmt.Fprintf(c.stderr, "%d of %d lines %s saw on %s/%s (grant %s) rebuilt.\n", res.Entries, res.ViewEntries,
		safeText(who), safeText(res.Service), safeText(res.Env), safeText(res.GrantID))
	for _, k := range res.Skips {
		fmt.Fprintf(c.stderr, "  not shown to the viewer: %d lines, seq %d-%d (%s)\n", k.Entries, k.From, k.To, safeText(k.Reason))
	}
	for _, m := range res.Missing {
		span := ""
		if m.From > 0 {
			span = fmt.Sprintf(" seq %d-%d", m.From, m.To)
		}
		fmt.Fprintf(c.stderr, "  missing%s: %s%s\n", span, safeText(m.Reason), prefixed(": ", safeText(m.Detail)))
	}
	if !res.Verified {
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("NOT verified: %s", safeText(res.Reason))}
	}
	fmt.Fprintf(c.stderr, "Verified: the same lines as the view's digest %s.\n", safeText(res.ExpectedSHA256))
	return nil
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
