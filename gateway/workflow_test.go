package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// verdict is one action on a request: approve, deny or cancel.
type verdict struct {
	user, action string
	body         map[string]any
}

func approve(user string) verdict { return verdict{user: user, action: "approve"} }
func deny(user, comment string) verdict {
	return verdict{user: user, action: "deny", body: map[string]any{"comment": comment}}
}
func cancel(user string) verdict { return verdict{user: user, action: "cancel"} }

func (h *harness) act(id string, v verdict) (int, api.Request) {
	h.t.Helper()
	var out api.Request
	var body any
	if v.body != nil {
		body = v.body
	}
	code := h.call(v.user, "POST", "/api/v1/requests/"+id+"/"+v.action, body, &out)
	return code, out
}

// TestRequestStateMachine drives every request transition and every
// refused one over the API, from a request built by the case's steps.
func TestRequestStateMachine(t *testing.T) {
	h := newHarness(t)
	prod, critical := prodRequest(), criticalRequest()
	cases := []struct {
		name      string
		requester string
		body      map[string]any
		before    []verdict // applied first; each must succeed
		act       verdict
		wantCode  int
		wantState string // the request's state afterwards
	}{
		{"one approval approves prod", "alice", prod, nil, approve("bob"), 200, store.StateApproved},
		{"two distinct approvers approve critical", "alice", critical, []verdict{approve("frank")}, approve("dave"), 200, store.StateApproved},
		{"first of two approvals keeps it pending", "alice", critical, nil, approve("frank"), 200, store.StatePending},
		{"the same person twice counts once", "alice", critical, []verdict{approve("frank")}, approve("frank"), 409, store.StatePending},
		{"approver in two groups still counts once", "gina", critical, []verdict{approve("erin")}, approve("erin"), 409, store.StatePending},
		{"deny with a comment", "alice", prod, nil, deny("bob", "use staging first"), 200, store.StateDenied},
		{"deny without a comment", "alice", prod, nil, deny("bob", ""), 400, store.StatePending},
		{"deny with a blank comment", "alice", prod, nil, deny("bob", "   "), 400, store.StatePending},
		{"one denial ends a two-approval request", "alice", critical, []verdict{approve("frank")}, deny("dave", "not now"), 200, store.StateDenied},
		{"requester cancels", "alice", prod, nil, cancel("alice"), 200, store.StateCancelled},
		{"someone else cannot cancel", "alice", prod, nil, cancel("bob"), 403, store.StatePending},
		{"cancel a cancelled request", "alice", prod, []verdict{cancel("alice")}, cancel("alice"), 409, store.StateCancelled},
		{"cancel an approved request", "alice", prod, []verdict{approve("bob")}, cancel("alice"), 409, store.StateApproved},
		{"approve a denied request", "alice", prod, []verdict{deny("bob", "no")}, approve("dave"), 409, store.StateDenied},
		{"approve a cancelled request", "alice", prod, []verdict{cancel("alice")}, approve("bob"), 409, store.StateCancelled},
		{"approve an approved request", "alice", prod, []verdict{approve("bob")}, approve("dave"), 409, store.StateApproved},
		{"deny an approved request", "alice", prod, []verdict{approve("bob")}, deny("dave", "too late"), 409, store.StateApproved},
		{"self-approval", "bob", prod, nil, approve("bob"), 403, store.StatePending},
		{"self-approval by an admin in every group", "erin", prod, nil, approve("erin"), 403, store.StatePending},
		{"self-denial by an admin", "erin", prod, nil, deny("erin", "changed my mind"), 403, store.StatePending},
		{"security is not a prod approver", "alice", prod, nil, approve("carol"), 403, store.StatePending},
		{"an engineer is not an approver", "alice", prod, nil, approve("gina"), 403, store.StatePending},
		{"an engineer cannot deny", "alice", prod, nil, deny("gina", "no"), 403, store.StatePending},
		{"security approves critical", "alice", critical, []verdict{approve("dave")}, approve("carol"), 200, store.StateApproved},
		{"an auto-approved request has nothing to approve", "alice", stagingRequest("10m"), nil, approve("bob"), 403, store.StateApproved},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			req := h.ask(tc.requester, tc.body, http.StatusCreated)
			for _, v := range tc.before {
				if code, _ := h.act(req.ID, v); code != http.StatusOK {
					t.Fatalf("setup %s by %s: status %d", v.action, v.user, code)
				}
			}
			code, _ := h.act(req.ID, tc.act)
			if code != tc.wantCode {
				t.Errorf("%s by %s: status %d, want %d", tc.act.action, tc.act.user, code, tc.wantCode)
			}
			var got api.Request
			if c := h.call(tc.requester, "GET", "/api/v1/requests/"+req.ID, nil, &got); c != http.StatusOK {
				t.Fatalf("GET request: status %d", c)
			}
			if got.State != tc.wantState {
				t.Errorf("state = %q, want %q", got.State, tc.wantState)
			}
			if (got.State == store.StateApproved) != (got.Grant != nil) {
				t.Errorf("state %q with grant %v: a grant exists exactly when approved", got.State, got.Grant)
			}
			if tc.wantState == store.StatePending && tc.body["env"] == "critical" {
				if want := 2 - len(got.Approvals); got.ApprovalsNeeded != want {
					t.Errorf("approvals_needed = %d, want %d", got.ApprovalsNeeded, want)
				}
			}
		})
	}
}

// TestApprovalStartsTheGrantClock: the grant runs from approval, not from
// the request.
func TestApprovalStartsTheGrantClock(t *testing.T) {
	h := newHarness(t)
	req := h.ask("alice", prodRequest(), http.StatusCreated)
	h.clock.Advance(20 * time.Minute)
	code, v := h.act(req.ID, approve("bob"))
	if code != http.StatusOK || v.Grant == nil {
		t.Fatalf("approve: status %d, grant %v", code, v.Grant)
	}
	if got, want := v.Grant.ExpiresAt.Sub(v.Grant.IssuedAt), 30*time.Minute; got != want {
		t.Errorf("grant length = %s, want %s", got, want)
	}
	if !v.Grant.IssuedAt.After(req.CreatedAt.Add(19 * time.Minute)) {
		t.Errorf("grant issued at %s, request made at %s: the clock must start at approval", v.Grant.IssuedAt, req.CreatedAt)
	}
}

func TestCreateRequest(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("x", 1001)
	cases := []struct {
		name       string
		user       string
		body       map[string]any
		wantCode   int
		wantState  string
		wantReason string // a substring of one decision reason
	}{
		{"staging is granted at once", "alice", stagingRequest("1h"), 201, store.StateApproved, ""},
		{"prod waits for an approver", "alice", prodRequest(), 201, store.StatePending, ""},
		{"a reason of 1000 characters is fine", "alice", map[string]any{"service": "checkout", "env": "staging",
			"duration": "5m", "reason": strings.Repeat("é", 1000)}, 201, store.StateApproved, ""},
		{"a reason over 1000 characters", "alice", map[string]any{"service": "checkout", "env": "staging",
			"duration": "5m", "reason": long}, 400, "", ""},
		{"no reason", "alice", map[string]any{"service": "checkout", "env": "staging", "duration": "5m"}, 400, "", ""},
		{"no duration", "alice", map[string]any{"service": "checkout", "env": "staging", "reason": "x"}, 400, "", ""},
		{"an unknown stream", "alice", map[string]any{"service": "nope", "env": "prod", "duration": "5m", "reason": "INC-1"}, 404, "", ""},
		{"an unknown field", "alice", map[string]any{"service": "checkout", "env": "staging", "duration": "5m",
			"reason": "x", "approver": "me"}, 400, "", ""},
		{"prod without a ticket", "alice", map[string]any{"service": "checkout", "env": "prod", "duration": "5m",
			"reason": "just looking"}, 201, store.StateDenied, "ticket reference"},
		{"prod over its cap", "alice", map[string]any{"service": "checkout", "env": "prod", "duration": "5h",
			"reason": "INC-1 x"}, 201, store.StateDenied, "exceeds the maximum of 4h"},
		{"not an engineer", "carol", stagingRequest("5m"), 201, store.StateDenied, "not a member of engineers"},
		{"break-glass by someone not on call", "alice", map[string]any{"service": "checkout", "env": "prod",
			"duration": "10m", "reason": "prod is on fire", "break_glass": true}, 201, store.StateDenied, "oncall"},
		{"break-glass by bob is granted at once", "bob", map[string]any{"service": "checkout", "env": "prod",
			"duration": "15m", "reason": "prod is on fire", "break_glass": true}, 201, store.StateApproved, ""},
		{"break-glass over its 15m cap", "bob", map[string]any{"service": "checkout", "env": "prod",
			"duration": "20m", "reason": "prod is on fire", "break_glass": true}, 201, store.StateDenied, "15m"},
		{"break-glass with a short reason", "bob", map[string]any{"service": "checkout", "env": "prod",
			"duration": "5m", "reason": "fire", "break_glass": true}, 201, store.StateDenied, "at least 10 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			var v api.Request
			code := h.call(tc.user, "POST", "/api/v1/requests", tc.body, &v)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d (reasons %q)", code, tc.wantCode, v.Decision.Reasons)
			}
			if code != http.StatusCreated {
				if v.ID != "" {
					t.Errorf("a refused request has an id %q", v.ID)
				}
				return
			}
			if v.State != tc.wantState {
				t.Errorf("state = %q, want %q (reasons %q)", v.State, tc.wantState, v.Decision.Reasons)
			}
			if tc.wantReason != "" && !strings.Contains(strings.Join(v.Decision.Reasons, "\n"), tc.wantReason) {
				t.Errorf("reasons %q do not mention %q", v.Decision.Reasons, tc.wantReason)
			}
			if v.Decision.ID == "" || !strings.HasPrefix(v.Decision.PolicyRevision, "sha256:") {
				t.Errorf("decision id %q, revision %q: both are required", v.Decision.ID, v.Decision.PolicyRevision)
			}
		})
	}
}

func TestBreakGlass(t *testing.T) {
	h := newHarness(t)
	v := h.ask("bob", map[string]any{"service": "checkout", "env": "prod", "duration": "15m",
		"reason": "prod is on fire <script>", "break_glass": true}, http.StatusCreated)
	if v.State != store.StateApproved || v.Grant == nil || !v.BreakGlass || !v.Grant.BreakGlass {
		t.Fatalf("break-glass: state %q, grant %+v; want approved, marked break-glass", v.State, v.Grant)
	}
	if got := v.Grant.ExpiresAt.Sub(v.Grant.IssuedAt); got != 15*time.Minute {
		t.Errorf("break-glass grant lasts %s, want 15m", got)
	}
	if got := v.Grant.MaxLookback; got != "15m0s" {
		t.Errorf("break-glass lookback = %s, want 15m0s", got)
	}
	if k := h.notes.kinds(); !slices.Contains(k, "request.break_glass") {
		t.Errorf("notifications %q lack request.break_glass", k)
	}
	evs := h.events(audit.Query{RequestID: v.ID})
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
	}
	for _, want := range []string{"request.created", "request.approved", "request.break_glass", "grant.issued", "review.opened"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit of the request %q lacks %s", actions, want)
		}
	}

	// The post-incident review: open for security, closed only with a
	// comment, never by the person who broke glass.
	var open api.List[api.Review]
	if code := h.call("carol", "GET", "/api/v1/reviews?state=open", nil, &open); code != http.StatusOK {
		t.Fatalf("list reviews: status %d", code)
	}
	var rev *api.Review
	for i := range open.Items {
		if open.Items[i].GrantID == v.Grant.ID {
			rev = &open.Items[i]
		}
	}
	if rev == nil || rev.State != store.ReviewOpen || rev.RequestID != v.ID {
		t.Fatalf("open reviews %+v: none for grant %s", open.Items, v.Grant.ID)
	}
	if code := h.call("alice", "GET", "/api/v1/reviews?state=open", nil, nil); code != http.StatusForbidden {
		t.Errorf("alice lists reviews: status %d, want 403", code)
	}
	if code := h.call("bob", "POST", "/api/v1/reviews/"+rev.ID+"/close", map[string]any{"comment": "all fine"}, nil); code != http.StatusForbidden {
		t.Errorf("bob (not security) closes: status %d, want 403", code)
	}
	if code := h.call("carol", "POST", "/api/v1/reviews/"+rev.ID+"/close", map[string]any{}, nil); code != http.StatusBadRequest {
		t.Errorf("close without a comment: status %d, want 400", code)
	}
	var closed api.Review
	if code := h.call("carol", "POST", "/api/v1/reviews/"+rev.ID+"/close", map[string]any{"comment": "justified: INC-9"}, &closed); code != http.StatusOK {
		t.Fatalf("close: status %d", code)
	}
	if closed.State != store.ReviewClosed || closed.Comment != "justified: INC-9" || closed.ClosedBy == nil {
		t.Errorf("closed review = %+v", closed)
	}
	if code := h.call("carol", "POST", "/api/v1/reviews/"+rev.ID+"/close", map[string]any{"comment": "again"}, nil); code != http.StatusConflict {
		t.Errorf("close twice: status %d, want 409", code)
	}

	// erin is on call and in security: she still cannot close her own.
	ev := h.ask("erin", map[string]any{"service": "checkout", "env": "prod", "duration": "5m",
		"reason": "database failover", "break_glass": true}, http.StatusCreated)
	if ev.State != store.StateApproved {
		t.Fatalf("erin's break-glass: %q %q", ev.State, ev.Decision.Reasons)
	}
	var mine api.List[api.Review]
	h.call("carol", "GET", "/api/v1/reviews?state=open", nil, &mine)
	var erinRev string
	for _, r := range mine.Items {
		if r.RequestID == ev.ID {
			erinRev = r.ID
		}
	}
	if code := h.call("erin", "POST", "/api/v1/reviews/"+erinRev+"/close", map[string]any{"comment": "was me, fine"}, nil); code != http.StatusForbidden {
		t.Errorf("erin closes her own review: status %d, want 403", code)
	}
	if code := h.call("carol", "POST", "/api/v1/reviews/"+erinRev+"/close", map[string]any{"comment": "checked"}, nil); code != http.StatusOK {
		t.Errorf("carol closes erin's review: status %d, want 200", code)
	}
}

func TestRevoke(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name     string
		by       string
		body     map[string]any
		twice    bool
		wantCode int
	}{
		{"by the holder", "alice", map[string]any{"reason": "done"}, false, 200},
		{"by an approver of the stream", "dave", map[string]any{"reason": "too broad"}, false, 200},
		{"by security", "carol", map[string]any{"reason": "suspicious"}, false, 200},
		{"by another engineer", "gina", map[string]any{"reason": "mine now"}, false, 403},
		{"without a reason", "alice", map[string]any{}, false, 400},
		{"a revoked grant", "alice", map[string]any{"reason": "again"}, true, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			g := h.grantFor("alice", "30m")
			path := "/api/v1/grants/" + g.ID + "/revoke"
			if tc.twice {
				if code := h.call("alice", "POST", path, map[string]any{"reason": "first"}, nil); code != 200 {
					t.Fatalf("first revoke: %d", code)
				}
			}
			var got api.Grant
			if code := h.call(tc.by, "POST", path, tc.body, &got); code != tc.wantCode {
				t.Fatalf("revoke: status %d, want %d", code, tc.wantCode)
			}
			var now api.Grant
			h.call("alice", "GET", "/api/v1/grants/"+g.ID, nil, &now)
			wantState := store.GrantActive
			if tc.wantCode == 200 || tc.twice {
				wantState = store.GrantRevoked
			}
			if now.State != wantState {
				t.Errorf("grant state = %q, want %q", now.State, wantState)
			}
			if tc.wantCode == 200 && (now.RevokedBy == nil || now.RevokeReason != tc.body["reason"]) {
				t.Errorf("revoked grant = %+v: want who and why", now)
			}
		})
	}
}

func TestExtendGoesThroughPolicy(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "30m")
	path := "/api/v1/grants/" + g.ID + "/extend"

	var v api.Request
	if code := h.call("alice", "POST", path, map[string]any{"duration": "15m", "reason": "still debugging"}, &v); code != http.StatusCreated {
		t.Fatalf("extend staging: status %d", code)
	}
	if v.State != store.StateApproved || v.Extends != g.ID || v.Grant == nil {
		t.Fatalf("extend staging: %+v", v)
	}
	if got, want := v.Grant.ExpiresAt.Sub(g.ExpiresAt), 15*time.Minute; got != want {
		t.Errorf("extension added %s, want %s", got, want)
	}

	if code := h.call("alice", "POST", path, map[string]any{"duration": "9h", "reason": "forever"}, &v); code != http.StatusCreated || v.State != store.StateDenied {
		t.Errorf("extend beyond the staging cap: status %d, state %q, want 201 denied", code, v.State)
	}
	if code := h.call("gina", "POST", path, map[string]any{"duration": "5m", "reason": "me too"}, nil); code != http.StatusForbidden {
		t.Errorf("extend someone else's grant: status %d, want 403", code)
	}

	// In prod the extension needs an approver, like the request did.
	req := h.ask("alice", prodRequest(), http.StatusCreated)
	if code, _ := h.act(req.ID, approve("bob")); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	var pg api.Request
	h.call("alice", "GET", "/api/v1/requests/"+req.ID, nil, &pg)
	ppath := "/api/v1/grants/" + pg.Grant.ID + "/extend"
	if code := h.call("alice", "POST", ppath, map[string]any{"duration": "10m", "reason": "no ticket"}, &v); code != 201 || v.State != store.StateDenied {
		t.Errorf("prod extension without a ticket: %d %q, want denied", code, v.State)
	}
	if code := h.call("alice", "POST", ppath, map[string]any{"duration": "10m", "reason": "INC-42 more time"}, &v); code != 201 || v.State != store.StatePending {
		t.Fatalf("prod extension: %d %q, want pending", code, v.State)
	}
	if code, _ := h.act(v.ID, approve("alice")); code != http.StatusForbidden {
		t.Errorf("self-approving an extension: %d, want 403", code)
	}
	code, ext := h.act(v.ID, approve("dave"))
	if code != 200 || ext.Grant == nil || ext.Grant.ID != pg.Grant.ID {
		t.Fatalf("approve extension: %d, %+v", code, ext.Grant)
	}
	if got, want := ext.Grant.ExpiresAt.Sub(pg.Grant.ExpiresAt), 10*time.Minute; got != want {
		t.Errorf("prod extension added %s, want %s", got, want)
	}
}

// TestTimeTransitions: pending requests lapse, grants expire (and cannot be
// revoked or tailed then), and a warning goes out five minutes before.
func TestTimeTransitions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	pending := h.ask("alice", prodRequest(), http.StatusCreated)
	crit := h.ask("alice", criticalRequest(), http.StatusCreated)
	g := h.grantFor("alice", "20m")

	h.clock.Advance(11 * time.Minute) // critical's pending timeout is 10m
	h.srv.sweep(ctx)
	var v api.Request
	h.call("alice", "GET", "/api/v1/requests/"+crit.ID, nil, &v)
	if v.State != store.StateLapsed {
		t.Errorf("critical request after 11m: %q, want lapsed", v.State)
	}
	h.call("alice", "GET", "/api/v1/requests/"+pending.ID, nil, &v)
	if v.State != store.StatePending {
		t.Errorf("prod request after 11m: %q, want still pending (1h timeout)", v.State)
	}
	if code, _ := h.act(crit.ID, approve("dave")); code != http.StatusConflict {
		t.Errorf("approve a lapsed request: %d, want 409", code)
	}
	if code, _ := h.act(crit.ID, cancel("alice")); code != http.StatusConflict {
		t.Errorf("cancel a lapsed request: %d, want 409", code)
	}

	h.clock.Advance(5 * time.Minute) // 16m into a 20m grant
	h.srv.sweep(ctx)
	if k := h.notes.kinds(); !slices.Contains(k, "grant.expiring") {
		t.Errorf("notifications %q: no grant.expiring 4m before the end", k)
	}
	n := len(h.notes.kinds())
	h.srv.sweep(ctx)
	if got := len(h.notes.kinds()); got != n {
		t.Errorf("a second sweep sent %d more notifications; the warning goes out once", got-n)
	}

	h.clock.Advance(50 * time.Minute)
	h.srv.sweep(ctx)
	h.call("alice", "GET", "/api/v1/requests/"+pending.ID, nil, &v)
	if v.State != store.StateLapsed {
		t.Errorf("prod request after 66m: %q, want lapsed", v.State)
	}
	var gv api.Grant
	h.call("alice", "GET", "/api/v1/grants/"+g.ID, nil, &gv)
	if gv.State != store.GrantExpired {
		t.Errorf("grant after its end: %q, want expired", gv.State)
	}
	stored, err := h.store.Grant(ctx, g.ID)
	if err != nil || stored.State != store.GrantExpired {
		t.Errorf("stored grant state %q (%v), want expired", stored.State, err)
	}
	if code := h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "x"}, nil); code != http.StatusConflict {
		t.Errorf("revoke an expired grant: %d, want 409", code)
	}
	if code := h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/extend", map[string]any{"duration": "5m", "reason": "x"}, nil); code != http.StatusConflict {
		t.Errorf("extend an expired grant: %d, want 409", code)
	}
	if _, resp, err := h.dialTail("alice", g.ID); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("tail an expired grant: %v (status %v), want 403", err, statusOf(resp))
	}
	if got := h.events(audit.Query{Action: "request.lapsed"}); len(got) != 2 {
		t.Errorf("request.lapsed events = %d, want 2", len(got))
	}
	if got := h.events(audit.Query{Action: "grant.expired", GrantID: g.ID}); len(got) != 1 {
		t.Errorf("grant.expired events = %d, want 1", len(got))
	}
}

func statusOf(r *http.Response) any {
	if r == nil {
		return nil
	}
	return r.StatusCode
}

func TestNotificationsFollowTheWorkflow(t *testing.T) {
	h := newHarness(t)
	a := h.ask("alice", prodRequest(), http.StatusCreated)
	h.act(a.ID, approve("bob"))
	b := h.ask("alice", prodRequest(), http.StatusCreated)
	h.act(b.ID, deny("bob", "<!channel> no"))
	c := h.ask("alice", prodRequest(), http.StatusCreated)
	h.act(c.ID, cancel("alice"))
	g := h.grantFor("alice", "10m")
	h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "done"}, nil)

	want := []string{"request.created", "request.approved", "request.created", "request.denied",
		"request.created", "request.cancelled", "request.approved", "grant.revoked"}
	if got := h.notes.kinds(); !slices.Equal(got, want) {
		t.Errorf("notifications = %q\nwant %q", got, want)
	}
}
