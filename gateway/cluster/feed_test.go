package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/logs"
)

var checkout = logs.Stream{Service: "checkout", Env: "prod"}

// collect reads n entries from v, failing on anything but entries.
func collect(t *testing.T, v *logs.Viewer, n int) []logs.Entry {
	t.Helper()
	var out []logs.Entry
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case m, ok := <-v.Messages():
			if !ok {
				t.Fatalf("viewer ended after %d entries: %v", len(out), v.Err())
			}
			var w struct {
				Type    string       `json:"type"`
				Entries []logs.Entry `json:"entries"`
			}
			if err := json.Unmarshal(m.Data, &w); err != nil || w.Type != logs.TypeEntries {
				t.Fatalf("got %s (err %v), want entries", m.Data, err)
			}
			out = append(out, w.Entries...)
		case <-timeout:
			t.Fatalf("got %d entries within 10s, want %d", len(out), n)
		}
	}
	return out
}

func seqsOf(es []logs.Entry) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestFeedFansOutAcrossReplicasWithSharedSeqs(t *testing.T) {
	e := newEnv(t)
	a, b := e.replica(t), e.replica(t)
	ctx := context.Background()
	// A viewer on B of a stream nobody has written yet: it is created by
	// A's first publish and announced to B's reader.
	vb, err := b.hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vb.Close()
	va, err := a.hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer va.Close()
	out, err := a.hub.Publish(ctx, entries(checkout, "from a", 5))
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(out); !slices.Equal(got, span(1, 5)) {
		t.Fatalf("Publish seqs = %v, want 1..5", got)
	}
	if _, err := b.hub.Publish(ctx, entries(checkout, "from b", 3)); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*logs.Viewer{"A": va, "B": vb} {
		got := collect(t, v, 8)
		if !slices.Equal(seqsOf(got), span(1, 8)) {
			t.Errorf("viewer on %s: seqs %v, want 1..8 once each", name, seqsOf(got))
		}
		if got[0].Message != "from a 0" || got[7].Message != "from b 2" || got[0].Attrs["i"] != "0" || got[0].Observed.IsZero() {
			t.Errorf("viewer on %s: entries %+v", name, got)
		}
	}
}

func TestFeedBacklogResumeAndRestore(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t)
	ctx := context.Background()
	if _, err := a.hub.Publish(ctx, entries(checkout, "x", 30)); err != nil {
		t.Fatal(err)
	}
	staging := logs.Stream{Service: "checkout", Env: "staging"}
	if _, err := a.hub.Publish(ctx, entries(staging, "y", 2)); err != nil {
		t.Fatal(err)
	}
	// A replica started later knows the streams and restores them from Redis.
	c := e.replica(t)
	infos := c.hub.Streams()
	if len(infos) != 2 || infos[0].LastSeq != 30 || infos[1].LastSeq != 2 {
		t.Fatalf("late replica streams = %+v, want checkout/prod@30 and checkout/staging@2", infos)
	}
	es, err := c.feed.Range(ctx, checkout, 25, time.Time{}, 3)
	if err != nil || !slices.Equal(seqsOf(es), []int64{26, 27, 28}) {
		t.Errorf("Range(after 25, 3) = %v, %v", seqsOf(es), err)
	}
	v, err := c.hub.Subscribe(checkout, logs.SubscribeOptions{After: 27})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := seqsOf(collect(t, v, 3)); !slices.Equal(got, []int64{28, 29, 30}) {
		t.Errorf("resume after 27 = %v", got)
	}
	if _, err := a.hub.Publish(ctx, entries(checkout, "z", 1)); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(collect(t, v, 1)); got[0] != 31 {
		t.Errorf("live after resume = %v, want 31", got)
	}
	if n, err := c.feed.LastSeq(ctx, checkout); n != 31 || err != nil {
		t.Errorf("LastSeq = %d, %v; want 31", n, err)
	}
}

func TestFeedRetentionCapsTheStream(t *testing.T) {
	e := newEnv(t)
	f, err := NewFeed(FeedConfig{Client: e.client(t), Prefix: e.prefix,
		Retention: func(string) logs.Retention { return logs.Retention{MaxEntries: 100} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 20 {
		if _, err := f.Publish(ctx, entries(checkout, "r", 50)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.client(t).XLen(ctx, f.streamKey(streamName(checkout))).Result()
	if err != nil || n < 100 || n > 300 {
		t.Errorf("stream length = %d (err %v), want about 100 (MAXLEN ~ 100)", n, err)
	}
	if last, _ := f.LastSeq(ctx, checkout); last != 1000 {
		t.Errorf("LastSeq = %d, want 1000", last)
	}
}

func TestFeedOutageEndsViewersAndRecovers(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs its own redis-server (REDIS_URL is set)")
	}
	a := e.replica(t)
	ctx := context.Background()
	if _, err := a.hub.Publish(ctx, entries(checkout, "before", 2)); err != nil {
		t.Fatal(err)
	}
	v, err := a.hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("viewer not ended within 10s of Redis going away")
	}
	if !errors.Is(v.Err(), ErrUnavailable) {
		t.Errorf("viewer err = %v, want ErrUnavailable", v.Err())
	}
	if a.feed.Healthy() == nil {
		t.Error("Healthy = nil with Redis down")
	}
	if _, err := a.hub.Publish(ctx, entries(checkout, "during", 1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("publish with Redis down: err = %v, want ErrUnavailable", err)
	}
	e.srv.Restart()
	waitFor(t, "feed healthy again", func() bool { return a.feed.Healthy() == nil })
	w, err := a.hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := a.hub.Publish(ctx, entries(checkout, "after", 2)); err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(collect(t, w, 2)); !slices.Equal(got, []int64{3, 4}) {
		t.Errorf("after recovery: seqs %v, want 3 4 (continuing the persisted counter)", got)
	}
}

// TestFeedReplicaCutOffCatchesUp: a replica cut off from Redis ends its
// tails, and when it is back it has every entry the others published
// meanwhile, with the same seqs.
func TestFeedReplicaCutOffCatchesUp(t *testing.T) {
	e := newEnv(t)
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, opt.Addr)
	opt.Addr, opt.MaxRetries, opt.DialTimeout = proxy.addr(), -1, 200*time.Millisecond
	viaProxy := redis.NewClient(opt)
	defer viaProxy.Close()
	a, b := e.replica(t), e.replicaOn(t, viaProxy)
	ctx := context.Background()
	v, err := b.hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.hub.Publish(ctx, entries(checkout, "before", 2)); err != nil {
		t.Fatal(err)
	}
	collect(t, v, 2)
	proxy.cut(true)
	select {
	case <-v.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tail on the cut-off replica did not end")
	}
	if _, err := a.hub.Publish(ctx, entries(checkout, "meanwhile", 3)); err != nil {
		t.Fatal(err)
	}
	proxy.cut(false)
	waitFor(t, "cut-off replica healthy again", func() bool { return b.feed.Healthy() == nil })
	waitFor(t, "cut-off replica caught up", func() bool {
		infos := b.hub.Streams()
		return len(infos) == 1 && infos[0].LastSeq == 5
	})
	w, err := b.hub.Subscribe(checkout, logs.SubscribeOptions{After: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := collect(t, w, 3)
	if !slices.Equal(seqsOf(got), []int64{3, 4, 5}) || got[0].Message != "meanwhile 0" {
		t.Errorf("resume on the cut-off replica = %v", seqsOf(got))
	}
}
