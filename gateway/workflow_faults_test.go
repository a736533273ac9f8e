package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// TestBrokenPolicyRejectedOnReload: a policy that does not compile, or
// fails its own tests, is rejected on reload with a policy.rejected audit
// event, and the old revision keeps deciding.
func TestBrokenPolicyRejectedOnReload(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- h.policy.Watch(ctx, func(ev policy.ReloadEvent) { h.srv.RecordPolicyReload(ctx, ev) })
	}()
	defer func() {
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	before := h.policy.Revision()
	accessPath := filepath.Join(h.policyDir, "access.rego")
	original, err := os.ReadFile(accessPath)
	if err != nil {
		t.Fatal(err)
	}

	// waitFor rewrites a file until an audit event of action appears after
	// seen events (the watcher may not be watching yet on the first write).
	waitFor := func(action string, seen int, write func()) []audit.Event {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			write()
			if evs, ok := h.eventsWithin(audit.Query{Action: action}, time.Second, 50*time.Millisecond,
				func(evs []audit.Event) bool { return len(evs) > seen }); ok {
				return evs
			}
		}
		t.Fatalf("no %s event within 10s", action)
		return nil
	}

	cases := []struct {
		name, file, content string
		wantReason          string
	}{
		{"does not compile", "broken.rego", "package loggate.access\n\nallow if {\n", "rego_parse_error"},
		{"fails its own tests", "access.rego", strings.Replace(string(original),
			`"max_duration_seconds": 28800, # 8h`, `"max_duration_seconds": 60,`, 1), "policy tests failed"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(h.policyDir, tc.file)
			evs := waitFor("policy.rejected", i, func() {
				if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			})
			ev := evs[0]
			if ev.Outcome != "failure" || ev.PolicyRevision != before || ev.Reason == "" {
				t.Errorf("policy.rejected = outcome %q, revision %q, reason %q; want failure, the old revision %q and why",
					ev.Outcome, ev.PolicyRevision, ev.Reason, before)
			}
			if !strings.Contains(ev.Reason, tc.wantReason) {
				t.Errorf("policy.rejected reason %q does not say %q", ev.Reason, tc.wantReason)
			}
			if got := h.policy.Revision(); got != before {
				t.Errorf("revision after a rejected reload = %s, want the old %s", got, before)
			}
			v := h.ask("alice", stagingRequest("2h"), http.StatusCreated)
			if v.State != store.StateApproved || v.Decision.PolicyRevision != before {
				t.Errorf("decision after a rejected reload: %q by %s, want approved by the old revision", v.State, v.Decision.PolicyRevision)
			}
			// Put things back; the same files are the same revision: no event.
			if tc.file == "access.rego" {
				err = os.WriteFile(path, original, 0o644)
			} else {
				err = os.Remove(path)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	// A good change is taken and audited with both revisions.
	evs := waitFor("policy.reloaded", 0, func() {
		if err := os.WriteFile(accessPath, append(append([]byte(nil), original...), "\n# reviewed\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if evs[0].Details["old_revision"] != before || evs[0].PolicyRevision == before || h.policy.Revision() == before {
		t.Errorf("policy.reloaded = revision %s, details %v; want a new revision after %s", evs[0].PolicyRevision, evs[0].Details, before)
	}
}

// TestAuditFailureFailsClosed: when the audit trail cannot take the
// workflow's events, nothing happens: 503, nothing stored, no grant, no
// log byte.
func TestAuditFailureFailsClosed(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.token("alice") // sign-in events are not the subject here
	h.token("bob")
	failActions := func(prefixes ...string) func(audit.Event) bool {
		return func(ev audit.Event) bool {
			for _, p := range prefixes {
				if strings.HasPrefix(ev.Action, p) {
					return true
				}
			}
			return false
		}
	}
	countRequests := func() int {
		reqs, _, err := h.store.Requests(ctx, store.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(reqs)
	}
	countGrants := func() int {
		gs, _, err := h.store.Grants(ctx, store.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(gs)
	}
	wantUnavailable := func(what string, code int) {
		t.Helper()
		if code != http.StatusServiceUnavailable {
			t.Errorf("%s with the audit trail failing: status %d, want 503", what, code)
		}
	}

	t.Run("create request", func(t *testing.T) {
		h.t = t
		n := countRequests()
		h.audit.fail(failActions("request."))
		var body map[string]string
		wantUnavailable("POST /requests", h.call("alice", "POST", "/api/v1/requests", prodRequest(), &body))
		h.audit.fail(nil)
		if body["code"] != "audit_unavailable" {
			t.Errorf("error code %q, want audit_unavailable", body["code"])
		}
		if got := countRequests(); got != n {
			t.Errorf("requests stored: %d, want %d (none new)", got, n)
		}
	})

	t.Run("auto-approved grant", func(t *testing.T) {
		h.t = t
		n, g := countRequests(), countGrants()
		h.audit.fail(failActions("grant.issued"))
		wantUnavailable("staging request", h.call("alice", "POST", "/api/v1/requests", stagingRequest("5m"), nil))
		h.audit.fail(nil)
		if countRequests() != n || countGrants() != g {
			t.Errorf("something was stored although grant.issued could not be audited")
		}
	})

	t.Run("break-glass review", func(t *testing.T) {
		h.t = t
		n, g := countRequests(), countGrants()
		h.audit.fail(failActions("review.opened"))
		wantUnavailable("break-glass", h.call("bob", "POST", "/api/v1/requests", map[string]any{"service": "checkout",
			"env": "prod", "duration": "5m", "reason": "prod is on fire", "break_glass": true}, nil))
		h.audit.fail(nil)
		if countRequests() != n || countGrants() != g {
			t.Errorf("a break-glass grant was stored although its review could not be audited")
		}
	})

	t.Run("approve", func(t *testing.T) {
		h.t = t
		req := h.ask("alice", prodRequest(), http.StatusCreated)
		g := countGrants()
		h.audit.fail(failActions("request.approved", "grant.issued"))
		code, _ := h.act(req.ID, approve("bob"))
		h.audit.fail(nil)
		wantUnavailable("approve", code)
		var v api.Request
		h.call("alice", "GET", "/api/v1/requests/"+req.ID, nil, &v)
		if v.State != store.StatePending || len(v.Approvals) != 0 || v.Grant != nil {
			t.Errorf("after a failed approve: state %q, %d approvals, grant %v; want pending, none, none", v.State, len(v.Approvals), v.Grant)
		}
		if got := countGrants(); got != g {
			t.Errorf("grants: %d, want %d", got, g)
		}
		if code, _ := h.act(req.ID, approve("bob")); code != http.StatusOK {
			t.Errorf("approve once the trail is back: %d, want 200", code)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		h.t = t
		g := h.grantFor("alice", "10m")
		h.audit.fail(failActions("grant.revoked"))
		wantUnavailable("revoke", h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "x"}, nil))
		h.audit.fail(nil)
		if st, _ := h.store.Grant(ctx, g.ID); st.State != store.GrantActive {
			t.Errorf("grant %q after an unaudited revoke, want still active", st.State)
		}
	})

	t.Run("tail", func(t *testing.T) {
		h.t = t
		g := h.grantFor("alice", "10m")
		h.audit.fail(failActions("stream.opened"))
		conn, resp, err := h.dialTail("alice", g.ID)
		h.audit.fail(nil)
		if err == nil {
			conn.Close()
			t.Fatal("tail upgraded although stream.opened could not be audited")
		}
		if statusOf(resp) != http.StatusServiceUnavailable {
			t.Fatalf("tail: status %v, want 503", statusOf(resp))
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "audit_unavailable") || resp.Header.Get("Upgrade") != "" {
			t.Errorf("refused tail answered %q (Upgrade %q); want a JSON error and no upgrade", body, resp.Header.Get("Upgrade"))
		}
	})

	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(m), "loggate_audit_write_failures_total 6") {
		t.Errorf("metrics do not count 6 audit write failures:\n%s", grep(string(m), "audit_write"))
	}
}

func grep(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
