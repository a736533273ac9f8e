package notify

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

const hostile = "<!channel> @here see <https://evil.example|the fix> & ping <@U123> @everyone"

func TestSlackBodyEscapesReasons(t *testing.T) {
	rc := newReceiver(t)
	n := open(t, quick(outboxPath(t), Target{URL: rc.URL, Format: FormatSlack}))
	p := requestPayload(hostile)
	p["request"].(map[string]any)["requester"] = map[string]any{"name": "@channel <!here>"}
	if err := n.Notify(context.Background(), KindRequestCreated, p); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	var body map[string]string
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatalf("slack body is not JSON: %v", err)
	}
	if len(body) != 1 || body["text"] == "" {
		t.Fatalf("slack body = %s, want only a text field", got.Body)
	}
	text := body["text"]
	for _, bad := range []string{"<!channel>", "<!here>", "<@U123>", "<https://evil", "@here", "@channel", "@everyone"} {
		if strings.Contains(text, bad) {
			t.Errorf("text contains %q: %s", bad, text)
		}
	}
	for _, want := range []string{"&lt;!channel&gt;", "&amp;", "@\u200bhere", "checkout/prod"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q: %s", want, text)
		}
	}
}

// TestSlackTextGolden pins the message for every kind, with a hostile reason.
func TestSlackTextGolden(t *testing.T) {
	grant := map[string]any{"id": "grt_1", "request_id": "req_abc", "service": "checkout", "env": "prod", "expires_at": "2025-01-02T04:04:05Z",
		"holder":        map[string]any{"name": "Bob Example"},
		"revoked_by":    map[string]any{"name": "Carol Example"},
		"revoke_reason": "done <here>"}
	req := func(extra map[string]any) map[string]any {
		r := requestPayload(hostile)["request"].(map[string]any)
		for k, v := range extra {
			r[k] = v
		}
		return map[string]any{"request": r}
	}
	cases := []struct {
		kind string
		data map[string]any
	}{
		{KindRequestCreated, req(nil)},
		{KindRequestApproved, req(map[string]any{"state": "approved", "grant": grant, "approvals": []any{
			map[string]any{"verdict": "approve", "approver": map[string]any{"name": "Bob Example"}}}})},
		{KindRequestApproved, req(map[string]any{"state": "approved", "grant": grant})},
		{KindRequestDenied, req(map[string]any{"state": "denied", "closed_by": map[string]any{"name": "Bob Example"},
			"closed_comment": "use staging & retry"})},
		{KindRequestDenied, req(map[string]any{"state": "denied",
			"decision": map[string]any{"reasons": []any{"requester is not a member of engineers"}}})},
		{KindRequestCancelled, req(map[string]any{"state": "cancelled"})},
		{KindBreakGlass, req(map[string]any{"state": "approved", "break_glass": true, "duration": "15m0s", "grant": grant})},
		{KindGrantExpiring, map[string]any{"grant": grant}},
		{KindGrantRevoked, map[string]any{"grant": grant}},
		{"request.lapsed", req(nil)},
	}
	var b strings.Builder
	for _, c := range cases {
		env, _ := json.Marshal(envelope{ID: "msg_1", Type: c.kind, Data: c.data})
		body, err := slackBody(c.kind, env, "https://loggate.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.Unmarshal(body, &m)
		b.WriteString(c.kind + "\n" + m["text"] + "\n\n")
	}
	path := filepath.Join("testdata", "slack.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("slack texts differ from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func FuzzSlackEscape(f *testing.F) {
	for _, s := range []string{hostile, "", "a&b", "＠here", "line\nbreak", "<<>>", "\xff@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := slackEscape(s)
		if strings.ContainsAny(out, "<>\n\r") {
			t.Fatalf("slackEscape(%q) = %q keeps markup or a line break", s, out)
		}
		for i := 0; i < len(out); i++ {
			if out[i] == '&' && !strings.HasPrefix(out[i:], "&amp;") && !strings.HasPrefix(out[i:], "&lt;") && !strings.HasPrefix(out[i:], "&gt;") {
				t.Fatalf("slackEscape(%q) = %q has a bare &", s, out)
			}
			if out[i] == '@' && !strings.HasPrefix(out[i+1:], "\u200b") {
				t.Fatalf("slackEscape(%q) = %q has an @ that can mention", s, out)
			}
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("slackEscape broke UTF-8: %q", out)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "120", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "1e9", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 || d > 7*24*time.Hour {
			t.Fatalf("parseRetryAfter(%q) = %s", s, d)
		}
	})
}

func TestSlackAlertText(t *testing.T) {
	a := map[string]any{"rule": "checkout-errors", "severity": "critical", "service": "checkout", "env": "prod",
		"count": float64(12), "window": "5m0s", "link": "https://loggate.example.com/?alert_id=alt_1"}
	got := slackText(KindAlertFired, map[string]any{"alert": a}, "https://loggate.example.com")
	for _, want := range []string{"checkout-errors", "checkout/prod", "12 in 5m0s", "<https://loggate.example.com/?alert_id=alt_1|Ask for access>"} {
		if !strings.Contains(got, want) {
			t.Errorf("fired text %q lacks %q", got, want)
		}
	}
	if got := slackText(KindAlertResolved, map[string]any{"alert": a}, ""); !strings.Contains(got, "resolved") {
		t.Errorf("resolved text = %q", got)
	}
}
