package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func streamsCommand() *command {
	return &command{
		name:    "streams",
		summary: "list the streams you may ask for, and what each requires",
		usage:   "loggate streams [--output text|json|csv]",
		help: `Lists the log streams you may request and what the policy would require for
each: automatic approval or how many approvals from whom, the longest grant,
how far back you may read, and whether you may break glass.`,
		example: "  loggate streams",
		flags:   addServerFlags,
		outputs: []string{"text", "json", "csv"},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			format := flagString(fs, "output")
			return listing[api.Stream]{path: "/api/v1/streams", table: streamsTable,
				empty: "No streams you may ask for. Ask a loggate admin which groups policy expects."}.show(ctx, c, fs, format)
		},
	}
}

func streamsTable(streams []api.Stream, raws []json.RawMessage) *table {
	t := &table{header: []string{"STREAM", "APPROVAL", "MAX_DURATION", "LOOKBACK", "BREAK_GLASS", "REASON_FORMAT"}}
	for i, s := range streams {
		approval := "automatic"
		if !s.AutoApprove {
			approval = fmt.Sprintf("%d from %s", s.ApprovalsRequired, strings.Join(s.ApproverGroups, "|"))
		}
		t.add(raws[i], s.Service+"/"+s.Env, approval, s.MaxDuration, s.MaxLookback, yesNo(s.BreakGlassAllowed), orDash(s.ReasonPattern))
	}
	return t
}

func grantsCommand() *command {
	return &command{
		name:    "grants",
		summary: "list your grants",
		usage:   "loggate grants [--active] [--all] [--output text|json|csv]",
		help:    "Lists your grants (newest first); --active only those you can tail now; --all everyone's (security).",
		example: "  loggate grants --active\n  loggate grants --all --output json | jq .",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.Bool("active", false, "only active grants")
			fs.Bool("all", false, "everyone's grants (security)")
			fs.Int("limit", 100, "at most this many")
		},
		outputs: []string{"text", "json", "csv"},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			format := flagString(fs, "output")
			q := url.Values{}
			if flagString(fs, "active") == "true" {
				q.Set("state", "active")
			}
			if flagString(fs, "all") == "true" {
				q.Set("all", "true")
			}
			return listing[api.Grant]{path: "/api/v1/grants", query: q, limit: flagInt(fs, "limit"), table: grantsTable,
				empty: "No grants. Ask for one with: loggate request SERVICE/ENV --for 30m --reason \"...\""}.show(ctx, c, fs, format)
		},
	}
}

func grantsTable(grants []api.Grant, raws []json.RawMessage) *table {
	t := &table{header: []string{"ID", "STATE", "STREAM", "HOLDER", "ISSUED", "EXPIRES", "BREAK_GLASS", "REVOKED_BY", "REVOKE_REASON"}}
	for i, g := range grants {
		revokedBy := "-"
		if g.RevokedBy != nil {
			revokedBy = short(*g.RevokedBy)
		}
		t.add(raws[i], g.ID, g.State, g.Stream(), short(g.Holder), fmtTime(g.IssuedAt), fmtTime(g.ExpiresAt),
			yesNo(g.BreakGlass), revokedBy, orDash(g.RevokeReason))
	}
	return t
}

func revokeCommand() *command {
	return &command{
		name:    "revoke",
		summary: "end a grant now",
		usage:   `loggate revoke GRANT --reason "..."`,
		help: `Ends an active grant at once; a running tail of it stops with exit code 4.
The holder, the stream's approvers and security may revoke.`,
		example: `  loggate revoke grt_01HXYZ --reason "incident closed"`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("reason", "", "why (required; recorded in the audit trail)")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef(`revoke needs a grant id: loggate revoke GRANT --reason "..."`)
			}
			reason, err := requiredFlag(fs, "reason", `revoke needs --reason, e.g. --reason "incident closed"`)
			if err != nil {
				return err
			}
			g, err := sessionDo[api.Grant](ctx, c, fs, http.MethodPost, "/api/v1/grants/"+pathEscape(args[0])+"/revoke", map[string]string{"reason": reason})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Revoked grant %s (%s held by %s).\n", g.ID, g.Stream(), label(g.Holder))
			return nil
		},
	}
}

func extendCommand() *command {
	return &command{
		name:    "extend",
		summary: "ask for more time on an active grant",
		usage:   `loggate extend GRANT --for 15m --reason "..."`,
		help: `Asks for more time on your active grant. It goes through policy like a new
request: it may be approved at once, need approval, or be denied (exit 3).`,
		example: `  loggate extend grt_01HXYZ --for 15m --reason "INC-4211 still digging"`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("for", "15m", "how much more time (Go duration)")
			fs.String("reason", "", "why (required)")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef(`extend needs a grant id: loggate extend GRANT --for 15m --reason "..."`)
			}
			dur, err := durationFlag(fs, "for", "15m")
			if err != nil {
				return err
			}
			reason, err := requiredFlag(fs, "reason", `extend needs --reason, e.g. --reason "INC-4211 still digging"`)
			if err != nil {
				return err
			}
			req, err := sessionDo[api.Request](ctx, c, fs, http.MethodPost, "/api/v1/grants/"+pathEscape(args[0])+"/extend",
				map[string]string{"duration": dur.String(), "reason": reason})
			if err != nil {
				return err
			}
			switch req.State {
			case "approved":
				fmt.Fprintf(c.stdout, "Extended grant %s by %s", args[0], dur)
				if req.Grant != nil {
					fmt.Fprintf(c.stdout, "; it now ends at %s", fmtClock(req.Grant.ExpiresAt))
				}
				fmt.Fprintln(c.stdout, ".")
				return nil
			default:
				return c.printDecision(req)
			}
		},
	}
}
