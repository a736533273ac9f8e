package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, err := NewOnce(e.client(t), e.prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewOnce(e.client(t), e.prefix)
	until := time.Now().Add(time.Minute)
	if ok, err := a.Consume(ctx, "state-1", until); !ok || err != nil {
		t.Fatalf("first use on A: %v, %v", ok, err)
	}
	if ok, err := b.Consume(ctx, "state-1", until); ok || err != nil {
		t.Errorf("replay on B: %v, %v; want refused", ok, err)
	}
	if ok, _ := b.Consume(ctx, "state-2", until); !ok {
		t.Error("another value refused")
	}
	if e.srv != nil {
		e.srv.Stop()
		if ok, err := a.Consume(ctx, "state-3", until); ok || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Redis down: %v, %v; want false, ErrUnavailable", ok, err)
		}
	}
}
