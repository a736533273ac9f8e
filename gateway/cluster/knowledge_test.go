package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/gateway/logs"
)

// TestControlConfirmsOnlyWhatItHasRead: through a paused proxy (connections
// open, nothing forwarded) b's confirmation stops advancing and goes stale
// although its connection is alive; once resumed, a confirmation later than
// a message's publication implies the message was delivered.
func TestControlConfirmsOnlyWhatItHasRead(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs a redis-server of its own (REDIS_URL is set)")
	}
	proxy := redistest.StartProxy(t, e.srv.Addr)
	viaProxy, err := DialWithin(proxy.URL(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	a, _ := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: "a"})
	b, _ := NewControl(ControlConfig{Client: viaProxy, Prefix: e.prefix, ReplicaID: "b",
		Block: 100 * time.Millisecond, CallTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Message, 10)
	done := make(chan struct{})
	go func() { defer close(done); b.Subscribe(ctx, nil, func(m Message) { got <- m }) }()
	defer func() { cancel(); <-done }()
	const bound = time.Second
	waitFor(t, "b confirmed", func() bool { return b.Fresh(bound) == nil })

	proxy.Pause()
	waitFor(t, "the proxy holding b's traffic", func() bool { return proxy.Held() > 0 })
	if err := a.Publish(ctx, "revoked", "g1", "while b is cut off", time.Time{}); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	waitFor(t, "b stale", func() bool { return errors.Is(b.Fresh(bound), ErrStale) })
	select {
	case m := <-got:
		t.Fatalf("b got %+v through a paused proxy", m)
	default:
	}
	if !b.Confirmed().Before(published) {
		t.Fatalf("b confirmed %v, after the publication at %v it has not seen", b.Confirmed(), published)
	}

	proxy.Resume()
	waitFor(t, "b confirmed past the publication", func() bool { return b.Confirmed().After(published) })
	select {
	case m := <-got:
		if m.GrantID != "g1" {
			t.Errorf("b got %+v, want g1", m)
		}
	default:
		t.Fatal("b confirmed a time after the publication without delivering the message")
	}
	if err := b.Fresh(bound); err != nil {
		t.Errorf("b after resume: %v", err)
	}
}

// TestDialWithinFailsFastWhileCutAndRecovers: on a client from DialWithin, a
// call through a blackholed link ends with its deadline, later calls fail at
// once with ErrUnavailable, and calls work again once the link is back.
func TestDialWithinFailsFastWhileCutAndRecovers(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs a redis-server of its own (REDIS_URL is set)")
	}
	proxy := redistest.StartProxy(t, e.srv.Addr)
	c, err := DialWithin(proxy.URL(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, e.prefix+"k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.Pause()
	if err := c.Get(ctx, e.prefix+"k").Err(); err == nil {
		t.Fatal("GET through a paused proxy succeeded")
	}
	// The next calls do not wait for the network (one probe each 50ms may).
	fast := 0
	for range 20 {
		if err := c.Get(ctx, e.prefix+"k").Err(); errors.Is(err, ErrUnavailable) {
			fast++
		}
	}
	if fast == 0 {
		t.Error("no call failed fast with ErrUnavailable after a timeout")
	}
	// Background calls keep their own deadline and bypass the fast failure.
	bctx, cancel := context.WithTimeout(Background(ctx), 300*time.Millisecond)
	err = c.Get(bctx, e.prefix+"k").Err()
	cancel()
	if err == nil || errors.Is(err, errFastFail) {
		t.Errorf("background GET while cut: %v, want a network timeout", err)
	}
	proxy.Resume()
	waitFor(t, "calls working again", func() bool { return c.Get(ctx, e.prefix+"k").Val() == "v" })
}

// TestFeedDeliversNoEntryBeforeAnEarlierControlMessage: with Control set,
// entries appended after a control message reach b's viewers only once b's
// subscription has handed that message on.
func TestFeedDeliversNoEntryBeforeAnEarlierControlMessage(t *testing.T) {
	e := newEnv(t)
	a := e.replica(t)
	ca, _ := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: "a"})
	cb, _ := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: "b",
		Block: 100 * time.Millisecond, CallTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var applied atomic.Bool
	arrived, release := make(chan struct{}), make(chan struct{})
	ready := make(chan struct{})
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		cb.Subscribe(ctx, ready, func(Message) {
			close(arrived)
			<-release // a slow hand-over: the revocation is not applied yet
			applied.Store(true)
		})
	}()
	<-ready
	f, err := NewFeed(FeedConfig{Client: e.client(t), Prefix: e.prefix, Block: 100 * time.Millisecond, Control: cb})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := logs.NewHub(logs.HubConfig{Sequencer: f, Backlog: f, MaxViewerRate: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	feedDone := make(chan struct{})
	go func() { defer close(feedDone); f.Run(ctx, hub) }()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer func() { unblock(); cancel(); <-feedDone; <-subDone; hub.Close() }()
	waitFor(t, "b's feed reader connected", func() bool { return f.Healthy() == nil })
	v, err := hub.Subscribe(checkout, logs.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}

	if err := ca.Publish(ctx, "revoked", "g1", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	<-arrived
	if _, err := a.hub.Publish(ctx, entries(checkout, "after the revoke", 3)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-v.Messages():
		t.Fatalf("b's viewer got %s before the revocation was applied", m.Data)
	case <-time.After(300 * time.Millisecond):
	}
	unblock()
	es := collect(t, v, 3)
	if !applied.Load() {
		t.Error("entries delivered before the revocation was applied")
	}
	if es[0].Message != "after the revoke 0" {
		t.Errorf("first entry %+v", es[0])
	}
}

// TestControlTrimmedWhileCutIsStale: b is cut off while a publishes a
// revocation and enough after it that the stream trims both away. When b
// is back it cannot hear the revocation any more; it must not count
// itself up to date: Fresh reports it (twice, so the caller ends its tails
// before Sync lets entries through again) and Sync refuses meanwhile. A
// cut with nothing trimmed leaves b fresh, so the check can fail.
func TestControlTrimmedWhileCutIsStale(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs a redis-server of its own (REDIS_URL is set)")
	}
	proxy := redistest.StartProxy(t, e.srv.Addr)
	viaProxy, err := DialWithin(proxy.URL(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	a, _ := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: "a", MaxLen: 5})
	b, _ := NewControl(ControlConfig{Client: viaProxy, Prefix: e.prefix, ReplicaID: "b", MaxLen: 5,
		Block: 100 * time.Millisecond, CallTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Message, 100)
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() { defer close(done); b.Subscribe(ctx, ready, func(m Message) { got <- m }) }()
	defer func() { cancel(); <-done }()
	<-ready // b has its starting position: what a publishes now, b reads
	// Only the trim may make b stale here.
	const bound = time.Minute
	if err := a.Publish(ctx, "revoked", "g0", "before the cut", time.Time{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b read g0", func() bool { return len(got) == 1 })
	<-got

	cut := func(publish int, first string) {
		t.Helper()
		proxy.Pause()
		waitFor(t, "the proxy holding b's traffic", func() bool { return proxy.Held() > 0 })
		// b's read must fail (not just wait) for it to count as a break: a
		// read is abandoned Block+CallTimeout (300ms) after it was sent, so
		// once b's last good read is older than that, the ones since failed.
		waitFor(t, "b's read timing out", func() bool { return errors.Is(b.Fresh(500*time.Millisecond), ErrStale) })
		for i := range publish {
			id := first
			if i > 0 {
				id = fmt.Sprintf("filler-%d", i)
			}
			if err := a.Publish(ctx, "revoked", id, "while b is cut off", time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		proxy.Resume()
	}

	// Three messages, nothing of b's trimmed: b reads them and stays fresh.
	cut(3, "g1")
	waitFor(t, "b read the three", func() bool { return len(got) == 3 })
	for range 3 {
		<-got
	}
	if err := b.Fresh(bound); err != nil {
		t.Fatalf("after a cut with nothing trimmed: %v", err)
	}
	if err := b.Sync(ctx); err != nil {
		t.Fatalf("Sync after a cut with nothing trimmed: %v", err)
	}

	// The revocation of g2 and nine more: the stream keeps five.
	cut(10, "g2")
	var trimErr error
	waitFor(t, "b stale from the trim", func() bool { trimErr = b.Fresh(bound); return errors.Is(trimErr, ErrStale) })
	// The gateway tells a trim (control.resync) from a cut by ControlLost.
	var lost interface{ ControlLost() bool }
	if !errors.Is(trimErr, ErrTrimmed) || !errors.As(trimErr, &lost) || !lost.ControlLost() {
		t.Errorf("Fresh after the trim = %v, want it to wrap ErrTrimmed (ControlLost)", trimErr)
	}
	if err := b.Sync(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sync right after the trim was reported: %v, want ErrUnavailable", err)
	}
	if err := b.Fresh(bound); !errors.Is(err, ErrStale) {
		t.Errorf("second Fresh after the trim: %v, want ErrStale", err)
	}
	if err := b.Fresh(bound); err != nil {
		t.Errorf("third Fresh after the trim: %v, want fresh again", err)
	}
	for len(got) > 0 {
		if m := <-got; m.GrantID == "g2" {
			t.Fatalf("b got %+v, which the trim removed", m)
		}
	}
	waitFor(t, "Sync working again", func() bool { return b.Sync(ctx) == nil })
}
