package policy

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The input documents are built as ast values directly, which spares OPA
// a JSON round trip of a Go struct on every evaluation.

func str(s string) *ast.Term { return ast.StringTerm(s) }

func item(k string, v *ast.Term) [2]*ast.Term { return ast.Item(ast.StringTerm(k), v) }

func stringArray(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func subjectTerm(s Subject) *ast.Term {
	return ast.ObjectTerm(
		item("id", str(s.ID)),
		item("subject", str(s.Subject)),
		item("email", str(s.Email)),
		item("name", str(s.Name)),
		item("groups", stringArray(s.Groups)),
	)
}

// seconds renders d as a JSON number of seconds, exact for whole seconds.
func seconds(d time.Duration) *ast.Term {
	if d%time.Second == 0 {
		return ast.NumberTerm(json.Number(strconv.FormatInt(int64(d/time.Second), 10)))
	}
	return ast.NumberTerm(json.Number(strconv.FormatFloat(d.Seconds(), 'f', -1, 64)))
}

func timeItems(prefix string, t time.Time) [][2]*ast.Term {
	return [][2]*ast.Term{
		item(prefix, str(t.UTC().Format(time.RFC3339Nano))),
		item(prefix+"_unix", ast.NumberTerm(json.Number(strconv.FormatInt(t.Unix(), 10)))),
	}
}

// accessInput builds the data.loggate.access input document; now stands
// in for a zero in.Time.
func accessInput(in Input, now time.Time) ast.Value {
	t := in.Time
	if t.IsZero() {
		t = now
	}
	approvals := make([]*ast.Term, len(in.Approvals))
	for i, a := range in.Approvals {
		items := append([][2]*ast.Term{item("approver", subjectTerm(a.Approver))}, timeItems("time", a.Time)...)
		approvals[i] = ast.ObjectTerm(items...)
	}
	items := [][2]*ast.Term{
		item("action", str(in.Action)),
		item("requester", subjectTerm(in.Requester)),
		item("service", str(in.Service)),
		item("env", str(in.Env)),
		item("duration_seconds", seconds(in.Duration)),
		item("duration", str(in.Duration.String())),
		item("reason", str(in.Reason)),
		item("break_glass", ast.BooleanTerm(in.BreakGlass)),
		item("approvals", ast.ArrayTerm(approvals...)),
	}
	items = append(items, timeItems("time", t)...)
	return ast.NewObject(items...)
}

// actionInput builds the data.loggate.authz input document.
func actionInput(in ActionInput, now time.Time) ast.Value {
	items := [][2]*ast.Term{
		item("action", str(in.Action)),
		item("actor", subjectTerm(in.Actor)),
		item("requester", subjectTerm(in.Requester)),
		item("service", str(in.Service)),
		item("env", str(in.Env)),
		item("break_glass", ast.BooleanTerm(in.BreakGlass)),
		item("approver_groups", stringArray(in.ApproverGroups)),
	}
	items = append(items, timeItems("time", now)...)
	return ast.NewObject(items...)
}
