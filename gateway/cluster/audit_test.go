package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

func (e *env) audit(t testing.TB) *Audit {
	t.Helper()
	a, err := NewAudit(AuditConfig{Client: e.client(t), Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func event(action, grant string) audit.Event {
	return audit.Event{Action: action, Actor: audit.Actor{Kind: audit.ActorUser, Subject: "alice", Email: "alice@example.com"},
		Outcome: audit.OutcomeSuccess, Reason: "=HYPERLINK(1)", Target: audit.Target{GrantID: grant, Service: "checkout", Env: "prod"},
		Details: map[string]any{"n": 1, "formula": "=1+1"}}
}

func TestAuditOneChainAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	replicas := []*Audit{e.audit(t), e.audit(t), e.audit(t)}
	var wg sync.WaitGroup
	for i, a := range replicas {
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 10 {
					if _, err := a.Append(ctx, event("grant.issued", fmt.Sprintf("g%d-%d-%d", i, j, k))); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	rep, err := replicas[0].Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 120 || rep.LastSeq != 120 {
		t.Fatalf("verify = %+v, want 120 events, no problems", rep)
	}
	// The NDJSON export is checkable line by line as the SQLite one is.
	var buf bytes.Buffer
	if err := replicas[1].Export(ctx, &buf, audit.FormatNDJSON, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	prev := make([]byte, 32)
	n := int64(0)
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.LastIndex(line, []byte(`,"hash":"`))
		rec := append(append([]byte(nil), line[:i]...), '}')
		var v struct {
			Seq      int64  `json:"seq"`
			PrevHash string `json:"prev_hash"`
			Hash     string `json:"hash"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatal(err)
		}
		n++
		sum := sha256.Sum256(append(append([]byte(nil), prev...), rec...))
		if v.Seq != n || v.PrevHash != hex.EncodeToString(prev) || v.Hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("line %d: %s does not chain", n, line)
		}
		prev = sum[:]
	}
	if n != 120 {
		t.Errorf("exported %d lines, want 120", n)
	}
}

func TestAuditSearchGetAndCSV(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.audit(t)
	var ids []string
	for i := range 25 {
		action := "grant.issued"
		if i%5 == 0 {
			action = "auth.login"
		}
		ev, err := a.Append(ctx, event(action, fmt.Sprintf("g%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	tests := []struct {
		name  string
		q     audit.Query
		count int
		first int64
	}{
		{"all", audit.Query{Limit: 7}, 25, 25},
		{"prefix", audit.Query{Action: "auth.*", Limit: 2}, 5, 21},
		{"grant", audit.Query{GrantID: "g3"}, 1, 4},
		{"actor", audit.Query{Actor: "alice@example.com", Limit: 100}, 25, 25},
		{"nobody", audit.Query{Actor: "mallory"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []audit.Event
			q := tt.q
			for {
				p, err := a.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, p.Items...)
				if p.NextCursor == "" {
					break
				}
				q.Cursor = p.NextCursor
			}
			if len(got) != tt.count {
				t.Fatalf("got %d events, want %d", len(got), tt.count)
			}
			if tt.count > 0 && got[0].Seq != tt.first {
				t.Errorf("first seq = %d, want %d (newest first)", got[0].Seq, tt.first)
			}
		})
	}
	ev, err := a.Get(ctx, ids[3])
	if err != nil || ev.Seq != 4 || ev.Target.GrantID != "g3" || ev.Hash == "" {
		t.Errorf("Get = %+v, %v", ev, err)
	}
	if _, err := a.Get(ctx, "evt_nope"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Get unknown: %v, want ErrNotFound", err)
	}
	if _, err := a.Search(ctx, audit.Query{Cursor: "x"}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("bad cursor: %v, want ErrInvalid", err)
	}
	var buf bytes.Buffer
	if err := a.Export(ctx, &buf, audit.FormatCSV, audit.Query{Limit: 2}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "seq,id,") || !strings.Contains(lines[1], `,'=HYPERLINK(1),`) {
		t.Errorf("csv = %q, want a header, 2 rows, formulas defused", buf.String())
	}
	if _, err := a.Append(ctx, audit.Event{Action: "x", Outcome: "maybe", Actor: audit.Actor{Kind: "user"}}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("invalid outcome: %v, want ErrInvalid", err)
	}
	if _, err := a.Proof(ctx, ids[0]); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Proof: %v, want ErrNotSupported", err)
	}
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.audit(t)
	for i := range 6 {
		if _, err := a.Append(ctx, event("grant.issued", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(t)
	tests := []struct {
		name   string
		tamper func()
		want   audit.ProblemKind
	}{
		{"deleted record", func() { c.XDel(ctx, a.streamKey(), "3-0") }, audit.ProblemDeleted},
		{"head rewritten", func() { c.HSet(ctx, a.headKey(), "hash", strings.Repeat("ab", 32)) }, audit.ProblemModified},
		{"forged record appended", func() {
			c.XAdd(ctx, redisXAdd{a.streamKey(), "7-0", `{"seq":7,"prev_hash":"00","id":"evt_x"}`, "00"}.args())
		}, audit.ProblemModified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tamper()
			rep, err := a.Verify(ctx)
			if !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("Verify error = %v, want ErrTampered", err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || p.Kind == tt.want
			}
			if !found {
				t.Errorf("problems = %+v, want one of kind %s", rep.Problems, tt.want)
			}
		})
	}
}

func TestAuditUnavailableFailsClosedAndKeepsAcknowledged(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs its own redis-server")
	}
	ctx := context.Background()
	a := e.audit(t)
	for range 3 {
		if _, err := a.Append(ctx, event("grant.issued", "g")); err != nil {
			t.Fatal(err)
		}
	}
	e.srv.Stop()
	if _, err := a.Append(ctx, event("grant.issued", "g")); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("append with Redis down: %v, want ErrUnavailable", err)
	}
	e.srv.Restart() // reloads the append-only file: every acknowledged event is back
	if _, err := a.Append(ctx, event("grant.issued", "g")); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Verify(ctx)
	if err != nil || !rep.OK() || rep.Events != 4 {
		t.Errorf("after restart: %+v, %v; want 4 events chained", rep, err)
	}
}

func TestCheckDurability(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(t)
	if e.srv == nil {
		t.Skip("changes the server's configuration; needs its own redis-server")
	}
	if err := CheckDurability(ctx, c); err != nil {
		t.Fatalf("appendfsync always: %v", err)
	}
	c.ConfigSet(ctx, "appendfsync", "everysec")
	if err := CheckDurability(ctx, c); !errors.Is(err, ErrWeakDurability) {
		t.Errorf("everysec: %v, want ErrWeakDurability", err)
	}
	e.srv.Stop()
	if err := CheckDurability(ctx, c); !errors.Is(err, ErrUnavailable) {
		t.Errorf("down: %v, want ErrUnavailable", err)
	}
}

// TestAuditAppendRetryAfterLostReply: an append whose reply was lost is
// retried with the same id; the retry returns the stored event instead of
// writing it twice, and a different event reusing the id is refused.
func TestAuditAppendRetryAfterLostReply(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.audit(t)
	ev := event("grant.issued", "g1")
	ev.ID = "evt_fixed"
	ev.Time = time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	first, err := a.Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.Append(ctx, ev)
	if err != nil || again.Seq != first.Seq || again.Hash != first.Hash {
		t.Errorf("retry = %+v, %v; want the stored event (seq %d)", again, err, first.Seq)
	}
	other := event("grant.revoked", "g1")
	other.ID = "evt_fixed"
	if _, err := a.Append(ctx, other); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("different event reusing the id: %v, want ErrInvalid", err)
	}
	if rep, err := a.Verify(ctx); err != nil || rep.Events != 1 || !rep.OK() {
		t.Errorf("verify = %+v, %v; want one event", rep, err)
	}
}
