package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/gateway/logs"
)

type env struct {
	srv    *redistest.Server // nil with REDIS_URL
	url    string
	prefix string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	u, srv := redistest.FromEnvOrStart(t)
	return &env{srv: srv, url: u, prefix: redistest.Prefix(t)}
}

func (e *env) client(t testing.TB) *redis.Client {
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 300 * time.Millisecond
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// replica is one hub fed by the shared feed, with its reader running.
type replica struct {
	feed *Feed
	hub  *logs.Hub
}

func (e *env) replica(t testing.TB) *replica { return e.replicaOn(t, e.client(t)) }

func (e *env) replicaOn(t testing.TB, c *redis.Client) *replica {
	t.Helper()
	f, err := NewFeed(FeedConfig{Client: c, Prefix: e.prefix, Block: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h, err := logs.NewHub(logs.HubConfig{Sequencer: f, Backlog: f, QueueSize: 4096, MaxViewerRate: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed Run: %v", err)
		}
		h.Close()
	})
	waitFor(t, "feed reader connected", func() bool { return f.Healthy() == nil })
	return &replica{feed: f, hub: h}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func entries(s logs.Stream, prefix string, n int) []logs.Entry {
	out := make([]logs.Entry, n)
	for i := range out {
		out[i] = logs.Entry{Time: time.Now(), Service: s.Service, Env: s.Env, Level: logs.LevelInfo,
			Message: fmt.Sprintf("%s %d", prefix, i), Attrs: map[string]string{"i": fmt.Sprint(i)}}
	}
	return out
}

// redisXAdd builds a forged audit stream entry.
type redisXAdd struct{ stream, id, rec, hash string }

func (x redisXAdd) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: x.stream, ID: x.id, Values: []any{"r", x.rec, "h", x.hash}}
}

// cutProxy forwards TCP to Redis and can cut every connection, to take one
// client (not the server) off the network for a while.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection and refuses new ones while down.
func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
