package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// TestRedisSessionStore: the replicas' session store on a real Redis keeps
// records until they expire or are deleted, and a late Update (a refresh
// finishing after the session was ended) never brings one back.
func TestRedisSessionStore(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	prefix := "sessions-test:" + t.Name() + ":"
	s := &redisSessions{c: c, prefix: prefix + "session:", index: prefix + "sessions"}
	ctx := context.Background()
	now := time.Now()
	rec := auth.SessionRecord{ID: auth.SessionHandle("one"), UserID: "iss|alice", Created: now, Expires: now.Add(time.Hour)}
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Get(ctx, rec.ID); !ok || err != nil || got.UserID != "iss|alice" {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
	rec.Refresh = "sealed"
	if ok, err := s.Update(ctx, rec); !ok || err != nil {
		t.Fatalf("Update of a live record = %v, %v; want true", ok, err)
	}
	if ttl := c.TTL(ctx, prefix+"session:"+rec.ID).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL after Update = %v, want the session's remaining lifetime", ttl)
	}
	if recs, err := s.List(ctx); err != nil || len(recs) != 1 || recs[0].Refresh != "sealed" {
		t.Fatalf("List = %+v, %v", recs, err)
	}
	if ok, err := s.Delete(ctx, rec.ID); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if ok, err := s.Update(ctx, rec); ok || err != nil {
		t.Errorf("Update after Delete = %v, %v; want false", ok, err)
	}
	if _, ok, _ := s.Get(ctx, rec.ID); ok {
		t.Error("a deleted session came back")
	}
	if recs, _ := s.List(ctx); len(recs) != 0 {
		t.Errorf("List after Delete = %+v", recs)
	}
}
