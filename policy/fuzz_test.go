package policy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/policy"
)

// FuzzDecide feeds arbitrary requests to the default access policy and
// checks the promises the gateway relies on: a decision always comes back
// (the policy is total), and an allow never breaks the product rules.
func FuzzDecide(f *testing.F) {
	f.Add("request", "prod", "INC-1 down", "engineers", int64(time.Hour), false)
	f.Add("request", "staging", "", "engineers,oncall", int64(time.Minute), true)
	f.Add("extend", "qa", "x", "", int64(-1), false)
	f.Add("probe", "", "\xff", "engineers", int64(0), true)
	f.Add("request", "prod", "payments down, paging", "engineers,oncall", int64(15*time.Minute), true)

	e := newDefaultEngine(f)
	ticket := regexp.MustCompile(`^(INC|CHG|SR)-[0-9]+`)
	f.Fuzz(func(t *testing.T, action, env, reason, groups string, duration int64, breakGlass bool) {
		in := policy.Input{
			Action:     action,
			Requester:  policy.Subject{ID: "dev|fuzz", Groups: strings.Split(groups, ",")},
			Service:    "payments",
			Env:        env,
			Duration:   time.Duration(duration),
			Reason:     reason,
			BreakGlass: breakGlass,
		}
		d, err := e.Decide(t.Context(), in)
		if err != nil {
			t.Fatalf("Decide(%+v): %v", in, err)
		}
		if !d.Allow {
			if len(d.Reasons) == 0 {
				t.Fatalf("deny without reasons for %+v", in)
			}
			return
		}
		if len(d.Reasons) != 0 || d.MaxDuration <= 0 {
			t.Fatalf("allow with reasons %q or cap %v for %+v", d.Reasons, d.MaxDuration, in)
		}
		if !slices.Contains(in.Requester.Groups, "engineers") {
			t.Fatalf("allowed a non-engineer: %+v", in)
		}
		if breakGlass && (!slices.Contains(in.Requester.Groups, "oncall") || d.ApprovalsRequired != 0 || d.MaxDuration > 15*time.Minute) {
			t.Fatalf("break-glass decision %+v for %+v", d, in)
		}
		if action == "request" || action == "extend" {
			if in.Duration < time.Second || in.Duration > d.MaxDuration {
				t.Fatalf("allowed duration %v with cap %v", in.Duration, d.MaxDuration)
			}
			if env == "prod" && !breakGlass && !ticket.MatchString(reason) {
				t.Fatalf("allowed prod reason %q", reason)
			}
		} else if action != "probe" {
			t.Fatalf("allowed action %q", action)
		}
	})
}
