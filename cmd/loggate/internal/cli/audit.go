package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func auditSearchCommand() *command {
	return &command{
		name:    "audit search",
		summary: "search the audit trail (security)",
		usage:   "loggate audit search [--actor A] [--action X] [--outcome O] [--service S] [--env E] [--grant G] [--request R] [--since T] [--until T] [--limit N] [--output table|json|csv]",
		help: `Searches the audit trail, newest first. --since and --until take an RFC 3339
time or a duration before now (24h). Searching is itself audited.`,
		example: `  loggate audit search --service checkout --env prod --since 24h
  loggate audit search --action grant.revoked --output csv > revocations.csv
  loggate audit search --actor alice@example.com --output json | jq .action`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("actor", "", "who acted (email or subject)")
			fs.String("action", "", "event action, e.g. grant.issued or stream.opened")
			fs.String("outcome", "", "success, denied or error")
			fs.String("service", "", "stream service")
			fs.String("env", "", "stream environment")
			fs.String("grant", "", "grant id")
			fs.String("request", "", "request id")
			fs.String("since", "", "from this time (RFC 3339) or this long ago (24h)")
			fs.String("until", "", "up to this time (RFC 3339) or this long ago")
			fs.Int("limit", 100, "at most this many events")
			fs.String("output", "table", "table, json or csv")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("audit search takes only flags (got %q)", args[0])
			}
			format := flagString(fs, "output")
			if format == "text" {
				format = "table"
			}
			if err := checkOutput(format, "table", "json", "csv"); err != nil {
				return err
			}
			limit := flagInt(fs, "limit")
			if limit < 1 {
				return exitcode.Usagef("--limit must be at least 1")
			}
			q := url.Values{}
			for _, name := range []string{"actor", "action", "outcome", "service", "env", "grant", "request", "since", "until"} {
				if v := flagString(fs, name); v != "" {
					q.Set(name, v)
				}
			}
			q.Set("limit", fmt.Sprint(min(limit, 1000)))
			return listing[api.AuditEvent]{path: "/api/v1/audit", query: q, limit: limit, table: auditTable,
				empty: "No matching events."}.show(ctx, c, fs, format)
		},
	}
}

func auditTable(events []api.AuditEvent, raws []json.RawMessage) *table {
	t := &table{header: []string{"SEQ", "TIME", "ACTOR", "ACTION", "OUTCOME", "TARGET", "REASON"}}
	for i, e := range events {
		t.add(raws[i], fmt.Sprint(e.Seq), fmtTime(e.Time), auditActor(e), e.Action, e.Outcome, orDash(auditTarget(e)), orDash(e.Reason))
	}
	return t
}

func auditTimelineCommand() *command {
	return &command{
		name:    "audit timeline",
		summary: "the story of one grant: request, decision, approvals, views, end",
		usage:   "loggate audit timeline GRANT [--output text|json]",
		help: `Shows everything that happened to one grant, in order: the request and the
policy decision, approvals, each time the stream was opened and closed (with
how many lines were sent), and how the grant ended. For the holder, the
stream's approvers and security.`,
		example: "  loggate audit timeline grt_01HXYZ",
		outputs: []string{"text", "json"},
		flags:   addServerFlags,
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("audit timeline needs a grant id: loggate audit timeline GRANT")
			}
			format := flagString(fs, "output")
			a, err := c.session(ctx, fs)
			if err != nil {
				return err
			}
			var tl struct {
				Grant   api.Grant        `json:"grant"`
				Request *api.Request     `json:"request"`
				Events  []api.AuditEvent `json:"events"`
			}
			if printed, err := a.getOrPrint(ctx, c, "/api/v1/grants/"+pathEscape(args[0])+"/timeline", format == "json", "timeline", &tl); printed || err != nil {
				return err
			}
			writeTimeline(c, tl.Grant, tl.Request, tl.Events)
			return nil
		},
	}
}

func writeTimeline(c *cli, g api.Grant, req *api.Request, events []api.AuditEvent) {
	w := c.stdout
	fmt.Fprintf(w, "Grant %s: %s for %s, %s\n", g.ID, g.Stream(), label(g.Holder), g.State)
	if req != nil {
		fmt.Fprintf(w, "Reason: %s\n", oneLine(req.Reason, 200))
	}
	fmt.Fprintf(w, "Issued %s, expires %s\n\n", fmtTime(g.IssuedAt), fmtTime(g.ExpiresAt))
	sort.SliceStable(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	for _, e := range events {
		line := fmt.Sprintf("%s  %-22s %-8s %s", fmtTime(e.Time), e.Action, e.Outcome, auditActor(e))
		if e.Reason != "" {
			line += ": " + oneLine(e.Reason, 120)
		}
		if d := timelineDetails(e); d != "" {
			line += " (" + d + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// timelineDetails picks the details worth a glance for stream events.
func timelineDetails(e api.AuditEvent) string {
	var parts []string
	for _, k := range []string{"entries", "bytes", "dropped", "close_reason", "duration_ms", "counts_from", "spooled_at"} {
		if v, ok := e.Details[k]; ok {
			if k == "duration_ms" {
				if f, ok := v.(float64); ok {
					parts = append(parts, "for "+(time.Duration(f)*time.Millisecond).Round(time.Second).String())
					continue
				}
			}
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}
