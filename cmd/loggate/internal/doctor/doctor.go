package doctor

import (
	"fmt"
	"io"
)

// Status is the outcome of one check.
type Status int

// The statuses, in increasing severity.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "fail"
}

// Result is one finding: what was checked, how it went, and, unless OK,
// what to do about it.
type Result struct {
	Check  string // e.g. "permissions", "idp discovery"
	Status Status
	Detail string // what was found
	Fix    string // what to do; empty when OK
}

// Worst is the most severe status among rs (OK when rs is empty).
func Worst(rs []Result) Status {
	w := OK
	for _, r := range rs {
		w = max(w, r.Status)
	}
	return w
}

// Print writes one line per result ("ok    check: detail") and an indented
// fix line for each that is not OK.
func Print(w io.Writer, rs []Result) {
	for _, r := range rs {
		fmt.Fprintf(w, "%-5s %s: %s\n", r.Status, r.Check, r.Detail)
		if r.Status != OK && r.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", r.Fix)
		}
	}
}

// ExitCode is the contract of `loggate doctor`: 0 when every check
// passed, 1 on any failure, 2 on warnings only.
func ExitCode(rs []Result) int {
	switch Worst(rs) {
	case Fail:
		return 1
	case Warn:
		return 2
	}
	return 0
}

func ok(check, format string, a ...any) Result {
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf(format, a...)}
}

func warn(check, fix, format string, a ...any) Result {
	return Result{Check: check, Status: Warn, Detail: fmt.Sprintf(format, a...), Fix: fix}
}

func fail(check, fix, format string, a ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(format, a...), Fix: fix}
}
