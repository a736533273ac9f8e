package gateway

import (
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

func TestDecideState(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	allow := policy.Decision{Allow: true, ApprovalsRequired: 1, MaxDuration: time.Hour, PendingTimeout: 20 * time.Minute}
	with := func(f func(*policy.Decision)) policy.Decision { d := allow; f(&d); return d }
	tests := []struct {
		name        string
		dec         policy.Decision
		args        openArgs
		wantState   string
		wantPending time.Time
		wantRefusal string
	}{
		{"policy denies", policy.Decision{Allow: false}, openArgs{duration: time.Minute}, store.StateDenied, time.Time{}, ""},
		{"needs approval", allow, openArgs{duration: time.Minute}, store.StatePending, now.Add(20 * time.Minute), ""},
		{"no pending timeout waits an hour", with(func(d *policy.Decision) { d.PendingTimeout = 0 }),
			openArgs{duration: time.Minute}, store.StatePending, now.Add(time.Hour), ""},
		{"auto-approved", with(func(d *policy.Decision) { d.ApprovalsRequired = 0 }),
			openArgs{duration: time.Minute}, store.StateApproved, time.Time{}, ""},
		{"break-glass allowed skips approval", with(func(d *policy.Decision) { d.BreakGlassAllowed = true }),
			openArgs{duration: time.Minute, breakGlass: true}, store.StateApproved, time.Time{}, ""},
		{"break-glass not allowed", allow, openArgs{duration: time.Minute, breakGlass: true}, store.StateDenied, time.Time{},
			"break-glass is not allowed for you on this stream"},
		{"too long", allow, openArgs{duration: 2 * time.Hour}, store.StateDenied, time.Time{},
			"duration 2h0m0s exceeds the maximum of 1h0m0s"},
		{"denial wins over a limit", policy.Decision{Allow: false, MaxDuration: time.Minute}, openArgs{duration: time.Hour},
			store.StateDenied, time.Time{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, pending, refusal := decideState(tt.dec, tt.args, now)
			if state != tt.wantState || !pending.Equal(tt.wantPending) || refusal != tt.wantRefusal {
				t.Errorf("decideState = (%q, %v, %q), want (%q, %v, %q)", state, pending, refusal,
					tt.wantState, tt.wantPending, tt.wantRefusal)
			}
		})
	}
}
