package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/api/client"
)

func alertsCommand() *command {
	return &command{
		name:    "alerts",
		summary: "list recent alerts (security and loggate-admins)",
		usage:   "loggate alerts [--state pending|firing|resolved] [--limit N] [--json]",
		help: `Lists recent alerts, newest first: which rule fired, for which stream, how
many matching lines were in the window, and when it started and ended.
--json prints each alert as one JSON object per line.`,
		example: "  loggate alerts --state firing\n  loggate alerts --json | jq .id",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("state", "", "only alerts in this state: pending, firing or resolved")
			fs.Int("limit", 100, "at most this many (1-1000)")
			fs.Bool("json", false, "one JSON object per alert")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unknown alerts subcommand %q (show ID, rules)", args[0])
			}
			q := url.Values{}
			switch st := flagString(fs, "state"); st {
			case "":
			case "pending", "firing", "resolved":
				q.Set("state", st)
			default:
				return exitcode.Usagef("--state must be pending, firing or resolved (got %q)", st)
			}
			limit := flagInt(fs, "limit")
			if limit < 1 || limit > 1000 {
				return exitcode.Usagef("--limit must be between 1 and 1000")
			}
			q.Set("limit", fmt.Sprint(limit))
			return listing[api.Alert]{path: "/api/v1/alerts", query: q, limit: limit, table: alertsTable,
				empty: "No alerts."}.show(ctx, c, fs, jsonOrText(fs))
		},
	}
}

// jsonOrText is the output format a --json flag asks for.
func jsonOrText(fs *flag.FlagSet) string {
	if flagString(fs, "json") == "true" {
		return "json"
	}
	return "text"
}

func alertsTable(alerts []api.Alert, raws []json.RawMessage) *table {
	t := &table{header: []string{"ID", "STATE", "RULE", "SEVERITY", "STREAM", "COUNT", "STARTED", "ENDED"}}
	for i, a := range alerts {
		t.add(raws[i], a.ID, a.State, a.Rule, orDash(a.Severity), orDash(alertStream(a)),
			fmt.Sprintf("%d/%d", a.Count, a.Threshold), fmtTimePtr(a.StartedAt), fmtTimePtr(a.EndedAt))
	}
	return t
}

func alertStream(a api.Alert) string {
	if a.Service == "" && a.Env == "" {
		return ""
	}
	return a.Service + "/" + a.Env
}

func alertsShowCommand() *command {
	return &command{
		name:    "alerts show",
		summary: "one alert in full",
		usage:   "loggate alerts show ALERT [--json]",
		help: `Shows one alert: rule, state, stream, group, labels and annotations, the
count against the threshold, its times, the sample line when policy lets it
have one, and the link to it in the web UI.`,
		example: "  loggate alerts show alt_01HXYZ",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.Bool("json", false, "the alert as JSON")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("alerts show needs an alert id: loggate alerts show ALERT")
			}
			a, err := c.session(ctx, fs)
			if err != nil {
				return err
			}
			var al api.Alert
			if printed, err := a.getOrPrint(ctx, c, "/api/v1/alerts/"+pathEscape(args[0]), jsonOrText(fs) == "json", "alert", &al); printed || err != nil {
				return err
			}
			writeAlert(c, al)
			return nil
		},
	}
}

func writeAlert(c *cli, a api.Alert) {
	w := c.stdout
	fmt.Fprintf(w, "Alert %s: %s, %s\n", a.ID, a.Rule, a.State)
	rows := [][2]string{
		{"Kind", a.Kind}, {"Severity", orDash(a.Severity)}, {"Stream", orDash(alertStream(a))},
		{"Count", fmt.Sprintf("%d (threshold %d, window %s)", a.Count, a.Threshold, a.Window)},
		{"Pending since", fmtTimePtr(a.PendingSince)}, {"Started", fmtTimePtr(a.StartedAt)},
		{"Ended", fmtTimePtr(a.EndedAt)}, {"Updated", fmtTime(a.UpdatedAt)},
		{"Group", orDash(pairs(a.Group))}, {"Labels", orDash(pairs(a.Labels))}, {"Annotations", orDash(pairs(a.Annotations))},
	}
	if a.Absent {
		rows = append(rows, [2]string{"Absent", "yes (no matching lines in the window)"})
	}
	if a.Sample != "" {
		rows = append(rows, [2]string{"Sample", oneLine(a.Sample, 512)})
	}
	rows = append(rows, [2]string{"Link", orDash(a.Link)})
	for _, r := range rows {
		fmt.Fprintf(w, "  %-14s %s\n", r[0]+":", r[1])
	}
}

// pairs is a map as k=v, sorted by key.
func pairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, " ")
}

func alertsRulesCommand() *command {
	return &command{
		name:    "alerts rules",
		summary: "print the alert rules in force, or replace them (--put FILE)",
		usage:   "loggate alerts rules [--put FILE] [--json]",
		help: `Prints the alert rules file the gateway runs (its text when the gateway
keeps one, else the parsed rules as JSON) and its digest. With --put FILE the
file replaces the rules: the gateway checks it first and, when it has
problems, keeps the running rules and says what is wrong (exit 1). For
loggate-admins; every change is audited (alert_rules.changed).`,
		example: "  loggate alerts rules > alerts.yaml\n  loggate alerts rules --put alerts.yaml",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("put", "", "replace the rules with this file (YAML or JSON)")
			fs.Bool("json", false, "the answer as JSON")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("alerts rules takes only flags (got %q)", args[0])
			}
			var body []byte
			if file := flagString(fs, "put"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return exitcode.Usagef("--put: %v", err)
				}
				body = b
			}
			a, err := c.session(ctx, fs)
			if err != nil {
				return err
			}
			if body != nil {
				return putAlertRules(ctx, c, fs, a, flagString(fs, "put"), body)
			}
			var rs api.AlertRules
			if printed, err := a.getOrPrint(ctx, c, "/api/v1/alert-rules", jsonOrText(fs) == "json", "alert rules", &rs); printed || err != nil {
				return err
			}
			fmt.Fprintf(c.stderr, "# %d rules, digest %s\n", len(rs.Rules), rs.Digest)
			if rs.Source != "" {
				fmt.Fprint(c.stdout, rs.Source)
				if !strings.HasSuffix(rs.Source, "\n") {
					fmt.Fprintln(c.stdout)
				}
				return nil
			}
			return writeJSONOut(c.stdout, rs.Rules)
		},
	}
}

func putAlertRules(ctx context.Context, c *cli, fs *flag.FlagSet, a *apiClient, file string, body []byte) error {
	var raw json.RawMessage
	err := a.do(ctx, http.MethodPut, "/api/v1/alert-rules", map[string]string{"source": string(body)}, &raw)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusBadRequest {
		msg := strings.TrimPrefix(ce.Message, "alert rules: ")
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("the gateway refused %s (the running rules are unchanged):\n  %s",
			file, strings.ReplaceAll(msg, "; ", "\n  "))}
	}
	if err != nil {
		return err
	}
	if jsonOrText(fs) == "json" {
		return writeCompactJSON(c.stdout, raw)
	}
	var saved api.AlertRulesSaved
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("unexpected answer from the server: %w", err)
	}
	fmt.Fprintf(c.stdout, "Alert rules replaced from %s: %d rules (%s), digest %s.\n", file, len(saved.Rules), strings.Join(saved.Rules, ", "), saved.Digest)
	return nil
}

// fmtTimePtr is fmtTime for a time that may not be set.
func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}
