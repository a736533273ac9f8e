package policy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

var (
	alice = policy.Subject{ID: "dev|alice", Subject: "alice", Email: "alice@example.com", Name: "Alice", Groups: []string{"engineers"}}
	bob   = policy.Subject{ID: "dev|bob", Subject: "bob", Email: "bob@example.com", Name: "Bob", Groups: []string{"engineers", "sre-leads", "oncall"}}
	carol = policy.Subject{ID: "dev|carol", Subject: "carol", Email: "carol@example.com", Name: "Carol", Groups: []string{"security", "loggate-admins"}}
	dave  = policy.Subject{ID: "dev|dave", Subject: "dave", Email: "dave@example.com", Name: "Dave"}
)

var fixedNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newDefaultEngine loads the shipped default policies, running their own
// Rego tests as the gateway would.
func newDefaultEngine(t testing.TB) *policy.Engine {
	t.Helper()
	e, err := policy.New(t.Context(), policy.Config{
		FS:             policies.FS,
		RunTestsOnLoad: true,
		Timeout:        time.Second, // generous: the test machine is shared
		Now:            func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestDefaultAccessPolicy(t *testing.T) {
	e := newDefaultEngine(t)
	tests := []struct {
		name string
		in   policy.Input
		want policy.Decision // ID and Revision are checked separately
	}{
		{
			name: "alice in staging is auto-approved",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "staging", Duration: time.Hour},
			want: policy.Decision{Allow: true, MaxDuration: 8 * time.Hour, MaxLookback: time.Hour},
		},
		{
			name: "alice in prod needs one sre-lead",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "prod", Duration: time.Hour, Reason: "INC-42 checkout 500s"},
			want: policy.Decision{Allow: true, ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"},
				MaxDuration: 4 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour, ReasonPattern: "^(INC|CHG|SR)-[0-9]+"},
		},
		{
			name: "another env needs one sre-lead, capped at 2h",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "qa", Duration: 2 * time.Hour},
			want: policy.Decision{Allow: true, ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"},
				MaxDuration: 2 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour},
		},
		{
			name: "carol is not an engineer",
			in:   policy.Input{Action: "request", Requester: carol, Service: "payments", Env: "staging", Duration: time.Hour},
			want: policy.Decision{Reasons: []string{"requester is not a member of engineers"}, MaxDuration: 8 * time.Hour, MaxLookback: time.Hour},
		},
		{
			name: "duration over the cap is denied, naming the cap",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "prod", Duration: 5 * time.Hour, Reason: "INC-42"},
			want: policy.Decision{Reasons: []string{"duration 5h0m0s exceeds the maximum of 4h for prod"}, ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"},
				MaxDuration: 4 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour, ReasonPattern: "^(INC|CHG|SR)-[0-9]+"},
		},
		{
			name: "duration under a second is denied",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "staging", Duration: 500 * time.Millisecond},
			want: policy.Decision{Reasons: []string{"duration must be at least 1s"}, MaxDuration: 8 * time.Hour, MaxLookback: time.Hour},
		},
		{
			name: "a probe with no duration or reason is not denied",
			in:   policy.Input{Action: "probe", Requester: alice, Service: "payments", Env: "prod"},
			want: policy.Decision{Allow: true, ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"},
				MaxDuration: 4 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour, ReasonPattern: "^(INC|CHG|SR)-[0-9]+"},
		},
		{
			name: "a probe tells bob he may break glass",
			in:   policy.Input{Action: "probe", Requester: bob, Service: "payments", Env: "prod"},
			want: policy.Decision{Allow: true, ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"}, BreakGlassAllowed: true,
				MaxDuration: 4 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour, ReasonPattern: "^(INC|CHG|SR)-[0-9]+"},
		},
		{
			name: "bob breaks glass in prod: granted at once, 15m cap",
			in: policy.Input{Action: "request", Requester: bob, Service: "payments", Env: "prod", Duration: 15 * time.Minute,
				Reason: "payments down, paging", BreakGlass: true},
			want: policy.Decision{Allow: true, MaxDuration: 15 * time.Minute, MaxLookback: 15 * time.Minute,
				BreakGlass: true, BreakGlassAllowed: true, MinReasonLength: 10},
		},
		{
			name: "bob breaks glass for longer than 15m",
			in: policy.Input{Action: "request", Requester: bob, Service: "payments", Env: "prod", Duration: 16 * time.Minute,
				Reason: "payments down, paging", BreakGlass: true},
			want: policy.Decision{Reasons: []string{"duration 16m0s exceeds the maximum of 15m for break-glass in prod"},
				MaxDuration: 15 * time.Minute, MaxLookback: 15 * time.Minute, BreakGlass: true, BreakGlassAllowed: true, MinReasonLength: 10},
		},
		{
			name: "bob breaks glass without a real reason",
			in: policy.Input{Action: "request", Requester: bob, Service: "payments", Env: "prod", Duration: 10 * time.Minute,
				Reason: "help", BreakGlass: true},
			want: policy.Decision{Reasons: []string{"a reason of at least 10 characters is required for break-glass in prod"},
				MaxDuration: 15 * time.Minute, MaxLookback: 15 * time.Minute, BreakGlass: true, BreakGlassAllowed: true, MinReasonLength: 10},
		},
		{
			name: "alice may not break glass",
			in: policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "prod", Duration: 10 * time.Minute,
				Reason: "payments down, paging", BreakGlass: true},
			want: policy.Decision{Reasons: []string{"break-glass is only for members of oncall"},
				MaxDuration: 15 * time.Minute, MaxLookback: 15 * time.Minute, BreakGlass: true, MinReasonLength: 10},
		},
		{
			name: "prod reason without a ticket is denied",
			in:   policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "prod", Duration: time.Hour, Reason: "curious"},
			want: policy.Decision{Reasons: []string{"reason must start with a ticket reference matching ^(INC|CHG|SR)-[0-9]+ in prod"},
				ApprovalsRequired: 1, ApproverGroups: []string{"sre-leads"},
				MaxDuration: 4 * time.Hour, MaxLookback: 15 * time.Minute, PendingTimeout: time.Hour, ReasonPattern: "^(INC|CHG|SR)-[0-9]+"},
		},
		{
			name: "an unknown action is denied",
			in:   policy.Input{Action: "steal", Requester: alice, Service: "payments", Env: "staging", Duration: time.Hour},
			want: policy.Decision{Reasons: []string{`unknown action "steal"`}, MaxDuration: 8 * time.Hour, MaxLookback: time.Hour},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !strings.HasPrefix(got.ID, "dec_") || len(got.ID) != len("dec_")+16 {
				t.Errorf("ID = %q, want dec_ and 16 hex digits", got.ID)
			}
			if got.Revision != e.Revision() {
				t.Errorf("Revision = %q, want %q", got.Revision, e.Revision())
			}
			got.ID, got.Revision = "", ""
			if !equalDecision(got, tt.want) {
				t.Errorf("Decide:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.AutoApprove() != (tt.want.Allow && tt.want.ApprovalsRequired == 0) {
				t.Errorf("AutoApprove() = %v", got.AutoApprove())
			}
		})
	}
}

func equalDecision(a, b policy.Decision) bool {
	// nil and empty slices mean the same here.
	return a.Allow == b.Allow && slices.Equal(a.Reasons, b.Reasons) &&
		a.ApprovalsRequired == b.ApprovalsRequired && slices.Equal(a.ApproverGroups, b.ApproverGroups) &&
		a.MaxDuration == b.MaxDuration && a.MaxLookback == b.MaxLookback && a.PendingTimeout == b.PendingTimeout &&
		a.BreakGlass == b.BreakGlass && a.BreakGlassAllowed == b.BreakGlassAllowed &&
		a.ReasonPattern == b.ReasonPattern && a.MinReasonLength == b.MinReasonLength
}

func TestDecisionIDsAreUnique(t *testing.T) {
	e := newDefaultEngine(t)
	in := policy.Input{Action: "probe", Requester: alice, Service: "payments", Env: "staging"}
	seen := map[string]bool{}
	for range 50 {
		d, err := e.Decide(t.Context(), in)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if seen[d.ID] {
			t.Fatalf("decision ID %q repeated", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestDefaultAuthorizationPolicy(t *testing.T) {
	e := newDefaultEngine(t)
	prodGroups := []string{"sre-leads"}
	tests := []struct {
		name      string
		in        policy.ActionInput
		wantAllow bool
		wantWhy   string // one of the reasons, when denied
	}{
		{"bob approves alice's prod request",
			policy.ActionInput{Action: "approve", Actor: bob, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups}, true, ""},
		{"bob denies alice's prod request",
			policy.ActionInput{Action: "deny", Actor: bob, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups}, true, ""},
		{"bob cannot approve his own request",
			policy.ActionInput{Action: "approve", Actor: bob, Requester: bob, Service: "payments", Env: "prod", ApproverGroups: prodGroups},
			false, "nobody may approve or deny their own request"},
		{"alice cannot approve bob's request",
			policy.ActionInput{Action: "approve", Actor: alice, Requester: bob, Service: "payments", Env: "prod", ApproverGroups: prodGroups},
			false, "only members of sre-leads may approve this request"},
		{"carol (security, admin) cannot approve",
			policy.ActionInput{Action: "approve", Actor: carol, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups},
			false, "only members of sre-leads may approve this request"},
		{"carol can revoke",
			policy.ActionInput{Action: "revoke", Actor: carol, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups}, true, ""},
		{"the holder can revoke",
			policy.ActionInput{Action: "revoke", Actor: alice, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups}, true, ""},
		{"an sre-lead can revoke an auto-approved staging grant",
			policy.ActionInput{Action: "revoke", Actor: bob, Requester: alice, Service: "payments", Env: "staging"}, true, ""},
		{"dave cannot revoke",
			policy.ActionInput{Action: "revoke", Actor: dave, Requester: alice, Service: "payments", Env: "prod", ApproverGroups: prodGroups},
			false, "only the holder, members of sre-leads, or members of security may revoke"},
		{"carol reads the audit trail", policy.ActionInput{Action: "read_audit", Actor: carol}, true, ""},
		{"bob cannot read the audit trail", policy.ActionInput{Action: "read_audit", Actor: bob},
			false, "only members of security may read the audit trail"},
		{"carol manages sources", policy.ActionInput{Action: "manage_sources", Actor: carol}, true, ""},
		{"carol manages policies", policy.ActionInput{Action: "manage_policies", Actor: carol}, true, ""},
		{"bob cannot manage policies", policy.ActionInput{Action: "manage_policies", Actor: bob},
			false, "only members of loggate-admins may manage policies"},
		{"bob views alice's request",
			policy.ActionInput{Action: "view_request", Actor: bob, Requester: alice, Env: "prod", ApproverGroups: prodGroups}, true, ""},
		{"an actor without an id is refused",
			policy.ActionInput{Action: "read_audit", Actor: policy.Subject{Groups: []string{"security"}}}, false, "actor has no identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Authorize(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if got.Allow != tt.wantAllow {
				t.Errorf("Allow = %v, want %v (reasons %q)", got.Allow, tt.wantAllow, got.Reasons)
			}
			if !tt.wantAllow && !slices.Contains(got.Reasons, tt.wantWhy) {
				t.Errorf("Reasons = %q, want to contain %q", got.Reasons, tt.wantWhy)
			}
			if tt.wantAllow && len(got.Reasons) != 0 {
				t.Errorf("Reasons = %q, want none", got.Reasons)
			}
			if !strings.HasPrefix(got.ID, "dec_") || got.Revision != e.Revision() {
				t.Errorf("ID, Revision = %q, %q", got.ID, got.Revision)
			}
		})
	}
}
