package logs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestPublishSubscribeOrderAndSeq(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})

	var published []int64
	for i := range 3 {
		out := publish(t, h, makeEntries("batch", i+2))
		published = append(published, seqs(out)...)
	}
	if want := seqRange(1, 9); !slices.Equal(published, want) {
		t.Fatalf("Publish seqs = %v, want %v", published, want)
	}
	// One entries message per Publish, in order.
	for i, want := range [][]int64{{1, 2}, {3, 4, 5}, {6, 7, 8, 9}} {
		w := decode(t, recv(t, v))
		if got := seqs(w.Entries); !slices.Equal(got, want) {
			t.Errorf("message %d seqs = %v, want %v", i, got, want)
		}
	}
	noMessage(t, v)

	got := h.Streams()
	want := []StreamInfo{{Stream: testStream, LastSeq: 9, FirstSeq: 1, Entries: 9, Bytes: got[0].Bytes, Viewers: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("Streams() = %+v, want %+v", got, want)
	}
}

func TestPublishSeveralStreams(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	other := Stream{Service: "web", Env: "prod"}
	vo, err := h.Subscribe(other, SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vo.Close()
	es := makeEntries("x", 4)
	es[1].Service, es[3].Service = "web", "web"
	out := publish(t, h, es)
	if got, want := seqs(out), []int64{1, 1, 2, 2}; !slices.Equal(got, want) {
		t.Fatalf("seqs = %v, want %v (per stream)", got, want)
	}
	w := decode(t, recv(t, vo))
	if got := []string{w.Entries[0].Message, w.Entries[1].Message}; !slices.Equal(got, []string{"x 1", "x 3"}) {
		t.Errorf("web viewer got %v, want [x 1 x 3]", got)
	}
}

func TestPublishRejectsEntryWithoutService(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	es := makeEntries("x", 2)
	es[1].Service = ""
	if _, err := h.Publish(context.Background(), es); err == nil {
		t.Fatal("Publish accepted an entry without service")
	}
	if got := h.Streams(); len(got) != 0 {
		t.Errorf("Streams() = %v after rejected publish, want none", got)
	}
}

func TestCloseEndsViewers(t *testing.T) {
	h, err := NewHub(HubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := h.Subscribe(testStream, SubscribeOptions{})
	v2, _ := h.Subscribe(Stream{Service: "b", Env: "dev"}, SubscribeOptions{})
	publish(t, h, makeEntries("x", 1))
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, v := range []*Viewer{v1, v2} {
		<-v.Done()
		for range v.Messages() { // drains to the close
		}
		if !errors.Is(v.Err(), ErrHubClosed) {
			t.Errorf("Err() = %v, want ErrHubClosed", v.Err())
		}
	}
	if _, err := h.Publish(context.Background(), makeEntries("x", 1)); !errors.Is(err, ErrHubClosed) {
		t.Errorf("Publish after Close: %v, want ErrHubClosed", err)
	}
	if _, err := h.Subscribe(testStream, SubscribeOptions{}); !errors.Is(err, ErrHubClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrHubClosed", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestViewerCloseIsIdempotentAndUnregisters(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	v.Close()
	v.Close()
	if _, ok := <-v.Messages(); ok {
		t.Error("Messages() not closed after Close")
	}
	if v.Err() != nil {
		t.Errorf("Err() = %v after Close, want nil", v.Err())
	}
	if got := h.Streams()[0].Viewers; got != 0 {
		t.Errorf("Viewers = %d after Close, want 0", got)
	}
	if err := v.SetFilter(Filter{}); !errors.Is(err, ErrViewerClosed) {
		t.Errorf("SetFilter on closed viewer: %v, want ErrViewerClosed", err)
	}
}

func TestSharedDataForEqualFilterKeys(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	f1 := Filter{MinLevel: LevelInfo, Attrs: map[string]string{"a": "1", "b": "2"}}
	f2 := Filter{MinLevel: "info", Attrs: map[string]string{"b": "2", "a": "1"}}
	f3 := Filter{MinLevel: LevelWarn, Attrs: map[string]string{"a": "1", "b": "2"}}
	v1 := subscribe(t, h, SubscribeOptions{Filter: f1})
	v2 := subscribe(t, h, SubscribeOptions{Filter: f2})
	v3 := subscribe(t, h, SubscribeOptions{Filter: f3})
	es := makeEntries("x", 3)
	for i := range es {
		es[i].Attrs = map[string]string{"a": "1", "b": "2"}
		es[i].Level = LevelError
	}
	publish(t, h, es)
	m1, m2, m3 := recv(t, v1), recv(t, v2), recv(t, v3)
	if &m1.Data[0] != &m2.Data[0] {
		t.Error("viewers with equal filter keys got separately encoded Data")
	}
	if &m1.Data[0] == &m3.Data[0] {
		t.Error("viewers with different filter keys share Data")
	}
	if string(m1.Data) != string(m3.Data) {
		t.Errorf("same entries encoded differently:\n%s\n%s", m1.Data, m3.Data)
	}
}

func TestStatsDigestAndRedactions(t *testing.T) {
	concat := func(datas [][]byte) string {
		h := sha256.New()
		for _, d := range datas {
			h.Write(d)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	chained := func(datas [][]byte) string {
		var d [32]byte
		for _, data := range datas {
			sum := sha256.Sum256(data)
			d = sha256.Sum256(append(d[:], sum[:]...))
		}
		return hex.EncodeToString(d[:])
	}
	tests := []struct {
		name    string
		chained bool
		digest  func([][]byte) string
	}{
		{"concatenation digest", false, concat},
		{"chained digest", true, chained},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, HubConfig{ChainedDigest: tt.chained})
			v := subscribe(t, h, SubscribeOptions{})
			other := subscribe(t, h, SubscribeOptions{}) // makes the message shared
			es := makeEntries("x", 3)
			es[0].Redactions = map[string]int{"email": 2}
			es[2].Redactions = map[string]int{"email": 1, "jwt": 1}
			publish(t, h, es)
			publish(t, h, makeEntries("y", 2))
			var datas [][]byte
			var bytes int64
			for range 2 {
				m := recv(t, v)
				datas = append(datas, m.Data)
				bytes += int64(len(m.Data))
			}
			v.Close()
			other.Close()
			got := v.Stats()
			if want := tt.digest(datas); got.Digest != want {
				t.Errorf("Digest = %s, want %s", got.Digest, want)
			}
			if got.Entries != 5 || got.Messages != 2 || got.Bytes != bytes || got.Dropped != 0 {
				t.Errorf("Stats = %+v, want 5 entries, 2 messages, %d bytes, 0 dropped", got, bytes)
			}
			if got.Redactions["email"] != 3 || got.Redactions["jwt"] != 1 || len(got.Redactions) != 2 {
				t.Errorf("Redactions = %v, want email:3 jwt:1", got.Redactions)
			}
			if o := other.Stats(); o.Messages != 0 || o.Digest != tt.digest(nil) {
				t.Errorf("unread viewer Stats = %+v, want nothing delivered", o)
			}
		})
	}
}

// TestBackfillAndLiveAreSeamless subscribes while another goroutine
// publishes: every viewer must see a gapless, duplicate-free run of seqs
// that ends with the last one published.
func TestBackfillAndLiveAreSeamless(t *testing.T) {
	h := newTestHub(t, HubConfig{QueueSize: 1 << 16})
	const batches, per = 200, 5
	var wg sync.WaitGroup
	wg.Go(func() {
		for range batches {
			publish(t, h, makeEntries("x", per))
		}
	})
	var viewers []*Viewer
	for i := range 20 {
		opts := SubscribeOptions{Lines: 7}
		if i%2 == 1 {
			opts = SubscribeOptions{After: int64(i * 10)}
		}
		viewers = append(viewers, subscribe(t, h, opts))
	}
	wg.Wait()
	const last = batches * per
	for i, v := range viewers {
		var got []int64
		for len(got) == 0 || got[len(got)-1] < last {
			w := decode(t, recv(t, v))
			if w.Type != TypeEntries {
				if w.Type == TypeGap {
					continue // an After older than what is kept is allowed
				}
				t.Fatalf("viewer %d: unexpected %s message", i, w.Type)
			}
			got = append(got, seqs(w.Entries)...)
		}
		if want := seqRange(got[0], last); !slices.Equal(got, want) {
			t.Errorf("viewer %d: seqs not a gapless run %d..%d: %v", i, got[0], last, got)
		}
	}
}

// TestTeardownRaces runs publishers, subscribers, filter changes, slow and
// fast readers and viewer closes against a hub that is closed midway; run
// with -race. Every viewer must end and every goroutine exit.
func TestTeardownRaces(t *testing.T) {
	h, err := NewHub(HubConfig{QueueSize: 4, SlowTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				if _, err := h.Publish(context.Background(), makeEntries("x", 10)); err != nil {
					if !errors.Is(err, ErrHubClosed) {
						t.Errorf("Publish: %v", err)
					}
					return
				}
			}
		})
	}
	var mu sync.Mutex
	var viewers []*Viewer
	for i := range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				v, err := h.Subscribe(testStream, SubscribeOptions{Lines: j % 20, Filter: Filter{Grep: "x [0-4]"}})
				if err != nil {
					if !errors.Is(err, ErrHubClosed) {
						t.Errorf("Subscribe: %v", err)
					}
					return
				}
				mu.Lock()
				viewers = append(viewers, v)
				mu.Unlock()
				switch (i + j) % 4 {
				case 0: // reads a few, then closes
					for range 3 {
						<-v.Messages()
					}
					v.Close()
				case 1: // changes its filter while reading
					v.SetFilter(Filter{MinLevel: LevelInfo})
					go func() {
						for range v.Messages() {
						}
					}()
				case 2: // never reads: ends up ErrSlow or hub closed
				case 3: // reads until the end
					go func() {
						for range v.Messages() {
						}
					}()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for _, v := range viewers {
		<-v.Done()
		if err := v.Err(); err != nil && !errors.Is(err, ErrSlow) && !errors.Is(err, ErrHubClosed) {
			t.Errorf("viewer ended with %v", err)
		}
	}
	if len(viewers) == 0 {
		t.Fatal("no viewer subscribed")
	}
}
