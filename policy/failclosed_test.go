package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/loggate/loggate/policy"
)

// denyAllAuthz completes a fixture set that exercises only the access rule.
const denyAllAuthz = `package loggate.authz

decision := {"allow": false, "reasons": ["fixture"]}
`

// fixture builds a policy file system from name/content pairs.
func fixture(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, body := range files {
		m[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return m
}

func TestDecideFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		access  string
		timeout time.Duration
		wantErr error  // matched with errors.Is; nil: any error
		wantMsg string // a substring of the error
	}{
		{
			name: "conflicting values at eval time",
			access: `package loggate.access

decision := {"allow": true, "max_duration_seconds": 60} if input.action == "request"

decision := {"allow": false, "reasons": ["no"]} if input.env == "prod"
`,
			wantMsg: "conflict",
		},
		{
			name: "builtin error (strict)",
			access: `package loggate.access

decision := {"allow": true, "max_duration_seconds": to_number(input.env)}
`,
			wantMsg: "to_number",
		},
		{
			name: "undefined decision",
			access: `package loggate.access

decision := {"allow": true, "max_duration_seconds": 60} if input.action == "never"
`,
			wantErr: policy.ErrUndefined,
		},
		{
			name: "decision not an object",
			access: `package loggate.access

decision := true
`,
			wantErr: policy.ErrMalformed,
		},
		{
			name: "allow not a boolean",
			access: `package loggate.access

decision := {"allow": "yes", "max_duration_seconds": 60}
`,
			wantErr: policy.ErrMalformed,
		},
		{
			name: "allow without a duration cap",
			access: `package loggate.access

decision := {"allow": true}
`,
			wantErr: policy.ErrMalformed,
		},
		{
			name: "approvals required from nobody",
			access: `package loggate.access

decision := {"allow": true, "max_duration_seconds": 60, "approvals_required": 1, "approver_groups": []}
`,
			wantErr: policy.ErrMalformed,
		},
		{
			name: "negative duration",
			access: `package loggate.access

decision := {"allow": true, "max_duration_seconds": -60}
`,
			wantErr: policy.ErrMalformed,
		},
		{
			name: "timeout",
			access: `package loggate.access

decision := {"allow": n > 0, "max_duration_seconds": 60} if {
	# Depends on input, so no compile-time evaluation can do it early.
	m := count(input.service) * 1000
	n := count([1 | some a in numbers.range(1, m); some b in numbers.range(1, m); some c in numbers.range(1, m)])
}
`,
			timeout: 20 * time.Millisecond,
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.New(t.Context(), policy.Config{
				FS:      fixture(map[string]string{"access.rego": tt.access, "authz.rego": denyAllAuthz}),
				Timeout: tt.timeout,
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			in := policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "prod", Duration: time.Minute}
			got, err := e.Decide(t.Context(), in)
			if err == nil {
				t.Fatalf("Decide error = nil, want an error (decision %+v)", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Decide error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Decide error = %v, want it to mention %q", err, tt.wantMsg)
			}
			if got.Allow || got.AutoApprove() {
				t.Errorf("Allow = true, want a deny on error")
			}
			if len(got.Reasons) != 1 || !strings.HasPrefix(got.Reasons[0], "policy error: ") {
				t.Errorf("Reasons = %q, want one \"policy error: ...\"", got.Reasons)
			}
			if got.ID == "" || got.Revision != e.Revision() {
				t.Errorf("ID, Revision = %q, %q; want both set", got.ID, got.Revision)
			}
		})
	}
}

func TestAuthorizeFailsClosed(t *testing.T) {
	const access = `package loggate.access

decision := {"allow": false, "reasons": ["fixture"]}
`
	tests := []struct {
		name  string
		authz string
	}{
		{"conflicting values", `package loggate.authz

decision := {"allow": true} if input.actor.id != ""

decision := {"allow": false} if input.action == "approve"
`},
		{"undefined", `package loggate.authz

decision := {"allow": true} if input.action == "never"
`},
		{"allow with reasons", `package loggate.authz

decision := {"allow": true, "reasons": ["but why"]}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := policy.New(t.Context(), policy.Config{FS: fixture(map[string]string{"access.rego": access, "authz.rego": tt.authz})})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got, err := e.Authorize(t.Context(), policy.ActionInput{Action: "approve", Actor: bob, Requester: alice, ApproverGroups: []string{"sre-leads"}})
			if err == nil {
				t.Fatalf("Authorize error = nil, want an error (decision %+v)", got)
			}
			if got.Allow || len(got.Reasons) == 0 || !strings.HasPrefix(got.Reasons[0], "policy error: ") {
				t.Errorf("Authorize = %+v, want a deny with a policy error reason", got)
			}
		})
	}
}

func TestDecideCancelledContextFailsClosed(t *testing.T) {
	e := newDefaultEngine(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := e.Decide(ctx, policy.Input{Action: "request", Requester: alice, Service: "payments", Env: "staging", Duration: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Decide error = %v, want context.Canceled", err)
	}
	if got.Allow {
		t.Errorf("Allow = true, want deny")
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr error
		wantMsg string
	}{
		{"no files", map[string]string{}, policy.ErrNoPolicy, ""},
		{"missing authz decision", map[string]string{"access.rego": "package loggate.access\n\ndecision := {}\n"}, policy.ErrNoPolicy, "data.loggate.authz.decision"},
		{"syntax error", map[string]string{"access.rego": "package loggate.access\n\ndecision := {\n", "authz.rego": denyAllAuthz}, nil, "rego_parse_error"},
		{"rego v0 syntax", map[string]string{"access.rego": "package loggate.access\n\ndecision = {\"allow\": false} { true }\n", "authz.rego": denyAllAuthz}, nil, "rego_parse_error"},
		{"network builtin", map[string]string{"access.rego": `package loggate.access

decision := http.send({"method": "GET", "url": "http://example.com"}).body
`, "authz.rego": denyAllAuthz}, nil, "http.send"},
		{"failing rego test with RunTestsOnLoad", map[string]string{
			"access.rego":      "package loggate.access\n\ndecision := {\"allow\": false}\n",
			"authz.rego":       denyAllAuthz,
			"access_test.rego": "package loggate.access_test\n\nimport data.loggate.access\n\ntest_allows if access.decision.allow\n",
		}, policy.ErrTestsFailed, "test_allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.New(t.Context(), policy.Config{FS: fixture(tt.files), RunTestsOnLoad: true})
			if err == nil {
				t.Fatal("New error = nil, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("New error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("New error = %v, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}
