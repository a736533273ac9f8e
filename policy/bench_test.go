package policy

import (
	"context"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loggate/loggate/policies"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

var benchInput = Input{
	Action:    "request",
	Requester: Subject{ID: "dev|alice", Subject: "alice", Email: "alice@example.com", Name: "Alice", Groups: []string{"engineers"}},
	Service:   "payments",
	Env:       "prod",
	Duration:  time.Hour,
	Reason:    "INC-42 checkout 500s",
	Time:      time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU reports CPU time per op (garbage collection included) next to
// ns/op: the machine is shared, so wall-clock ns/op swings with load while
// CPU time per op shows the work done. Call it before the loop and the
// returned func after it.
func measureCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkDecidePrepared is the production path: prepared query, input
// built as an ast value, result converted to a Decision.
func BenchmarkDecidePrepared(b *testing.B) {
	e, err := New(context.Background(), Config{FS: policies.FS, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer measureCPU(b)()
	for b.Loop() {
		d, err := e.Decide(ctx, benchInput)
		if err != nil || !d.Allow {
			b.Fatalf("Decide = %+v, %v", d, err)
		}
	}
}

// BenchmarkDecidePreparedParallel measures throughput on all cores.
func BenchmarkDecidePreparedParallel(b *testing.B) {
	e, err := New(context.Background(), Config{FS: policies.FS, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer measureCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := e.Decide(ctx, benchInput); err != nil || !d.Allow {
				b.Errorf("Decide = %+v, %v", d, err)
				return
			}
		}
	})
}

// BenchmarkDecideUnprepared is the naive path for comparison: parse,
// compile and evaluate the policy on every decision.
func BenchmarkDecideUnprepared(b *testing.B) {
	var opts []func(*rego.Rego)
	entries, err := fs.ReadDir(policies.FS, ".")
	if err != nil {
		b.Fatal(err)
	}
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), "_test.rego") {
			continue
		}
		src, err := fs.ReadFile(policies.FS, en.Name())
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, rego.Module(en.Name(), string(src)))
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer measureCPU(b)()
	for b.Loop() {
		input := newInputKeys().access(benchInput, benchInput.Time)
		r := rego.New(append([]func(*rego.Rego){
			rego.Query(accessQuery),
			rego.ParsedInput(input),
			rego.SetRegoVersion(ast.RegoV1),
		}, opts...)...)
		rs, err := r.Eval(ctx)
		if err != nil {
			b.Fatal(err)
		}
		obj, err := resultObject(rs)
		if err != nil {
			b.Fatal(err)
		}
		if d, err := parseDecision(obj); err != nil || !d.Allow {
			b.Fatalf("decision = %+v, %v", d, err)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	e, err := New(context.Background(), Config{FS: policies.FS, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	in := ActionInput{
		Action:         "approve",
		Actor:          Subject{ID: "dev|bob", Groups: []string{"engineers", "sre-leads", "oncall"}},
		Requester:      benchInput.Requester,
		Service:        "payments",
		Env:            "prod",
		ApproverGroups: []string{"sre-leads"},
	}
	ctx := context.Background()
	b.ReportAllocs()
	defer measureCPU(b)()
	for b.Loop() {
		if d, err := e.Authorize(ctx, in); err != nil || !d.Allow {
			b.Fatalf("Authorize = %+v, %v", d, err)
		}
	}
}
