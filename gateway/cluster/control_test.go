package cluster

import (
	"context"
	"testing"
	"time"
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
