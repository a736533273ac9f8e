package policy

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The input documents are built as ast values directly, which spares OPA
// a JSON round trip of a Go struct on every evaluation.

// inputKeys holds the object keys of the input documents as terms, built
// once per Engine and never modified, so each evaluation allocates only
// its values (OPA shares interned terms across evaluations the same way).
type inputKeys map[string]*ast.Term

func newInputKeys() inputKeys {
	k := inputKeys{}
	for _, s := range []string{
		"action", "requester", "actor", "service", "env", "duration_seconds", "duration",
		"reason", "break_glass", "approvals", "approver", "approver_groups", "time", "time_unix",
		"id", "subject", "email", "name", "groups", "request", "level", "scope",
	} {
		k[s] = ast.StringTerm(s)
	}
	return k
}

func (k inputKeys) item(key string, v *ast.Term) [2]*ast.Term {
	t, ok := k[key]
	if !ok {
		t = ast.StringTerm(key)
	}
	return [2]*ast.Term{t, v}
}

func str(s string) *ast.Term { return ast.StringTerm(s) }

func stringArray(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func (k inputKeys) subject(s Subject) *ast.Term {
	return ast.ObjectTerm(
		k.item("id", str(s.ID)),
		k.item("subject", str(s.Subject)),
		k.item("email", str(s.Email)),
		k.item("name", str(s.Name)),
		k.item("groups", stringArray(s.Groups)),
	)
}

// seconds renders d as a JSON number of seconds, exact for whole seconds.
func seconds(d time.Duration) *ast.Term {
	if d%time.Second == 0 {
		return ast.InternedTerm(int64(d / time.Second))
	}
	return ast.NumberTerm(json.Number(strconv.FormatFloat(d.Seconds(), 'f', -1, 64)))
}

func (k inputKeys) times(t time.Time) (rfc3339, unix [2]*ast.Term) {
	return k.item("time", str(t.UTC().Format(time.RFC3339Nano))),
		k.item("time_unix", ast.InternedTerm(t.Unix()))
}

// access builds the data.loggate.access input document; now stands in for
// a zero in.Time.
func (k inputKeys) access(in Input, now time.Time) ast.Value {
	t := in.Time
	if t.IsZero() {
		t = now
	}
	approvals := make([]*ast.Term, len(in.Approvals))
	for i, a := range in.Approvals {
		at, au := k.times(a.Time)
		approvals[i] = ast.ObjectTerm(k.item("approver", k.subject(a.Approver)), at, au)
	}
	tt, tu := k.times(t)
	return ast.NewObject(
		k.item("action", str(in.Action)),
		k.item("requester", k.subject(in.Requester)),
		k.item("service", str(in.Service)),
		k.item("env", str(in.Env)),
		k.item("duration_seconds", seconds(in.Duration)),
		k.item("duration", str(in.Duration.String())),
		k.item("reason", str(in.Reason)),
		k.item("break_glass", ast.InternedTerm(in.BreakGlass)),
		k.item("approvals", ast.ArrayTerm(approvals...)),
		k.item("request", k.request(in)),
		tt, tu,
	)
}

// request is input.request: what the request asks of the stream's services
// beyond access ({"level": "debug", "scope": {"tenant": "acme"}}).
func (k inputKeys) request(in Input) *ast.Term {
	scope := make([][2]*ast.Term, 0, len(in.Scope))
	for key, v := range in.Scope {
		scope = append(scope, [2]*ast.Term{ast.StringTerm(key), ast.StringTerm(v)})
	}
	return ast.ObjectTerm(k.item("level", str(in.Level)), k.item("scope", ast.ObjectTerm(scope...)))
}

// action builds the data.loggate.authz input document.
func (k inputKeys) action(in ActionInput, now time.Time) ast.Value {
	tt, tu := k.times(now)
	return ast.NewObject(
		k.item("action", str(in.Action)),
		k.item("actor", k.subject(in.Actor)),
		k.item("requester", k.subject(in.Requester)),
		k.item("service", str(in.Service)),
		k.item("env", str(in.Env)),
		k.item("break_glass", ast.InternedTerm(in.BreakGlass)),
		k.item("approver_groups", stringArray(in.ApproverGroups)),
		tt, tu,
	)
}
