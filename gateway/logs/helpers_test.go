package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

var testStream = Stream{Service: "api", Env: "prod"}

// wireMessage is the decoded JSON of any message type.
type wireMessage struct {
	Type    string  `json:"type"`
	Entries []Entry `json:"entries"`
	Count   int64   `json:"count"`
	FromSeq int64   `json:"from_seq"`
	ToSeq   int64   `json:"to_seq"`
	Reason  string  `json:"reason"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
}

func decode(t *testing.T, m Message) wireMessage {
	t.Helper()
	var w wireMessage
	if err := json.Unmarshal(m.Data, &w); err != nil {
		t.Fatalf("message is not JSON: %v: %s", err, m.Data)
	}
	if w.Type != m.Type {
		t.Fatalf("JSON type = %q, Message.Type = %q", w.Type, m.Type)
	}
	if m.Bytes != len(m.Data) {
		t.Errorf("Bytes = %d, want len(Data) = %d", m.Bytes, len(m.Data))
	}
	if m.Type == TypeEntries {
		if got, want := m.Entries, len(w.Entries); got != want {
			t.Errorf("Entries = %d, want %d", got, want)
		}
		if m.FirstSeq != w.Entries[0].Seq || m.LastSeq != w.Entries[len(w.Entries)-1].Seq {
			t.Errorf("FirstSeq, LastSeq = %d, %d; entries span %d..%d", m.FirstSeq, m.LastSeq, w.Entries[0].Seq, w.Entries[len(w.Entries)-1].Seq)
		}
	}
	return w
}

func newTestHub(t testing.TB, cfg HubConfig) *Hub {
	t.Helper()
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// makeEntries returns n info entries of testStream with messages "<prefix> i".
func makeEntries(prefix string, n int) []Entry {
	es := make([]Entry, n)
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	for i := range es {
		es[i] = Entry{
			Time: t0.Add(time.Duration(i) * time.Millisecond), Service: testStream.Service, Env: testStream.Env,
			Level: LevelInfo, Message: fmt.Sprintf("%s %d", prefix, i),
		}
	}
	return es
}

func publish(t testing.TB, h *Hub, es []Entry) []Entry {
	t.Helper()
	out, err := h.Publish(context.Background(), es)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return out
}

func subscribe(t testing.TB, h *Hub, opts SubscribeOptions) *Viewer {
	t.Helper()
	v, err := h.Subscribe(testStream, opts)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// recv returns the next message, failing after a generous real-time wait
// (tests that depend on time use synctest instead).
func recv(t *testing.T, v *Viewer) Message {
	t.Helper()
	select {
	case m, ok := <-v.Messages():
		if !ok {
			t.Fatalf("viewer ended early: %v", v.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
	}
	return Message{}
}

// recvEntries receives messages until it has n entries, failing on any other
// message type.
func recvEntries(t *testing.T, v *Viewer, n int) []Entry {
	t.Helper()
	var out []Entry
	for len(out) < n {
		m := recv(t, v)
		w := decode(t, m)
		if w.Type != TypeEntries {
			t.Fatalf("got %s message %s, want entries", w.Type, m.Data)
		}
		out = append(out, w.Entries...)
	}
	if len(out) != n {
		t.Fatalf("got %d entries, want %d", len(out), n)
	}
	return out
}

// noMessage checks that nothing is queued for v right now.
func noMessage(t *testing.T, v *Viewer) {
	t.Helper()
	select {
	case m := <-v.Messages():
		t.Fatalf("unexpected message %s", m.Data)
	case <-time.After(20 * time.Millisecond):
	}
}

func seqs(es []Entry) []int64 {
	out := make([]int64, len(es))
	for i := range es {
		out[i] = es[i].Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// clock is a manual clock for Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func fakeClock(t testing.TB) *clock {
	return &clock{t: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
