package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

// ErrUndefined is returned when a decision rule produced no value.
var ErrUndefined = errors.New("policy decision undefined")

// ErrMalformed is returned when a decision is not of the documented shape.
var ErrMalformed = errors.New("policy decision malformed")

// resultObject extracts the single object a decision query produced.
func resultObject(rs rego.ResultSet) (map[string]any, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, ErrUndefined
	}
	if len(rs) > 1 {
		return nil, fmt.Errorf("%w: %d results", ErrMalformed, len(rs))
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: decision is %T, not an object", ErrMalformed, rs[0].Expressions[0].Value)
	}
	return obj, nil
}

// fields reads typed fields from a decision object, remembering the first
// problem so the caller checks once.
type fields struct {
	obj map[string]any
	err error
}

func (f *fields) fail(key, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %q is %T, want %s", ErrMalformed, key, f.obj[key], want)
	}
}

// boolean reads a required boolean.
func (f *fields) boolean(key string) bool {
	b, ok := f.obj[key].(bool)
	if !ok {
		f.fail(key, "boolean")
	}
	return b
}

// optBool reads an optional boolean (absent: false).
func (f *fields) optBool(key string) bool {
	if _, ok := f.obj[key]; !ok {
		return false
	}
	return f.boolean(key)
}

// strs reads an optional array of strings.
func (f *fields) strs(key string) []string {
	v, ok := f.obj[key]
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		f.fail(key, "array of strings")
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			f.fail(key, "array of strings")
			return nil
		}
		out = append(out, s)
	}
	return out
}

// str reads an optional string.
func (f *fields) str(key string) string {
	v, ok := f.obj[key]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "string")
	}
	return s
}

// count reads an optional non-negative integer.
func (f *fields) count(key string) int {
	n := f.number(key, 1)
	if n > math.MaxInt32 {
		f.fail(key, "a small integer")
		return 0
	}
	return int(n)
}

// duration reads an optional non-negative number of seconds.
func (f *fields) duration(key string) time.Duration {
	return time.Duration(f.number(key, float64(time.Second)))
}

// number reads an optional non-negative number, scaled by unit; a result
// that is not whole in that unit or overflows is malformed.
func (f *fields) number(key string, unit float64) int64 {
	v, ok := f.obj[key]
	if !ok {
		return 0
	}
	n, ok := v.(json.Number)
	if !ok {
		f.fail(key, "number")
		return 0
	}
	x, err := n.Float64()
	x *= unit
	if err != nil || x < 0 || x != math.Trunc(x) || x > math.MaxInt64/2 {
		f.fail(key, "non-negative whole number")
		return 0
	}
	return int64(x)
}

// parseDecision converts a data.loggate.access.decision object.
func parseDecision(obj map[string]any) (Decision, error) {
	f := fields{obj: obj}
	d := Decision{
		Allow:             f.boolean("allow"),
		Reasons:           f.strs("reasons"),
		ApprovalsRequired: f.count("approvals_required"),
		ApproverGroups:    f.strs("approver_groups"),
		MaxDuration:       f.duration("max_duration_seconds"),
		MaxLookback:       f.duration("max_lookback_seconds"),
		PendingTimeout:    f.duration("pending_timeout_seconds"),
		BreakGlass:        f.optBool("break_glass"),
		BreakGlassAllowed: f.optBool("break_glass_allowed"),
		ReasonPattern:     f.str("reason_pattern"),
		MinReasonLength:   f.count("min_reason_length"),
	}
	if f.err != nil {
		return Decision{}, f.err
	}
	// An allowing decision must say how long access may last, and one that
	// needs approvals must say from whom; otherwise it cannot be enforced.
	if d.Allow && d.MaxDuration <= 0 {
		return Decision{}, fmt.Errorf("%w: allow without max_duration_seconds", ErrMalformed)
	}
	if d.Allow && d.ApprovalsRequired > 0 && len(d.ApproverGroups) == 0 {
		return Decision{}, fmt.Errorf("%w: approvals required but no approver_groups", ErrMalformed)
	}
	if d.Allow && len(d.Reasons) > 0 {
		return Decision{}, fmt.Errorf("%w: allow with deny reasons %q", ErrMalformed, d.Reasons)
	}
	if !d.Allow && len(d.Reasons) == 0 {
		d.Reasons = []string{"denied by policy"}
	}
	return d, nil
}

// parseActionDecision converts a data.loggate.authz.decision object.
func parseActionDecision(obj map[string]any) (ActionDecision, error) {
	f := fields{obj: obj}
	d := ActionDecision{Allow: f.boolean("allow"), Reasons: f.strs("reasons")}
	if f.err != nil {
		return ActionDecision{}, f.err
	}
	if d.Allow && len(d.Reasons) > 0 {
		return ActionDecision{}, fmt.Errorf("%w: allow with reasons %q", ErrMalformed, d.Reasons)
	}
	if !d.Allow && len(d.Reasons) == 0 {
		d.Reasons = []string{"not permitted"}
	}
	return d, nil
}
