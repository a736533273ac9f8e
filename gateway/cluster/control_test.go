package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestControlReachesOthersNotItself(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type got struct {
		who string
		msg Message
	}
	ch := make(chan got, 10)
	var cs []*Control
	for _, name := range []string{"a", "b", "c"} {
		c, err := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: name})
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		go c.Subscribe(ctx, ready, func(m Message) { ch <- got{name, m} })
		<-ready
		cs = append(cs, c)
	}
	exp := time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)
	if err := cs[0].Publish(ctx, "revoked", "grt_1", "INC over", exp); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 2 {
		select {
		case g := <-ch:
			seen[g.who] = true
			if g.msg.Kind != "revoked" || g.msg.GrantID != "grt_1" || g.msg.Reason != "INC over" || !g.msg.ExpiresAt.Equal(exp) || g.msg.Replica != "a" {
				t.Errorf("%s got %+v", g.who, g.msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v received the message", seen)
		}
	}
	select {
	case g := <-ch:
		t.Errorf("unexpected delivery to %s: %+v (the sender must not get its own message)", g.who, g.msg)
	case <-time.After(100 * time.Millisecond):
	}
	if !seen["b"] || !seen["c"] {
		t.Errorf("receivers = %v, want b and c", seen)
	}
}

// TestControlResumesAfterDisconnect: a revoke sent while a replica is cut
// off from Redis reaches it when it reconnects.
func TestControlResumesAfterDisconnect(t *testing.T) {
	e := newEnv(t)
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, opt.Addr)
	opt.Addr = proxy.addr()
	opt.MaxRetries = -1
	opt.DialTimeout = 200 * time.Millisecond
	viaProxy := redis.NewClient(opt)
	defer viaProxy.Close()

	a, _ := NewControl(ControlConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: "a"})
	b, _ := NewControl(ControlConfig{Client: viaProxy, Prefix: e.prefix, ReplicaID: "b", Block: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Message, 10)
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); b.Subscribe(ctx, ready, func(m Message) { got <- m }) }()
	defer func() { cancel(); <-done }()
	<-ready
	recvGrant := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m.GrantID != want {
				t.Fatalf("got %+v, want grant %s", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message for %s", want)
		}
	}
	if err := a.Publish(ctx, "revoked", "g1", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	recvGrant("g1")
	proxy.cut(true)
	time.Sleep(300 * time.Millisecond) // b is failing to read now
	if err := a.Publish(ctx, "revoked", "g2", "while b was away", time.Time{}); err != nil {
		t.Fatal(err)
	}
	proxy.cut(false)
	recvGrant("g2")
}
