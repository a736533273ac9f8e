package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
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
