package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// sealedReplica is a replica whose feed seals with ring.
func (e *env) sealedReplica(t *testing.T, ring *seal.Ring) *replica {
	t.Helper()
	f, err := NewFeed(FeedConfig{Client: e.client(t), Prefix: e.prefix, Block: 200 * time.Millisecond, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckKeys(context.Background()); err != nil {
		t.Fatalf("CheckKeys: %v", err)
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

func parseRing(t *testing.T, text []byte) *seal.Ring {
	t.Helper()
	r, err := seal.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSealedFeedRacingReplicas: two replicas sealing into one stream at
// once still get gapless shared seqs, every entry opens for its seq, and
// Redis holds no clear text.
func TestSealedFeedRacingReplicas(t *testing.T) {
	e := newEnv(t)
	text := seal.Generate()
	a, b := e.sealedReplica(t, parseRing(t, text)), e.sealedReplica(t, parseRing(t, text))
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Go(func() {
			for range 20 {
				if _, err := r.hub.Publish(ctx, entries(checkout, "okapi-canary", 3)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := b.feed.Range(ctx, checkout, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqsOf(got), span(1, 120)) || !strings.HasPrefix(got[119].Message, "okapi-canary") {
		t.Fatalf("Range seqs = %v, want 1..120 with their messages", seqsOf(got))
	}
	ms, err := e.client(t).XRange(ctx, e.prefix+"log:checkout/prod", "-", "+").Result()
	if err != nil || len(ms) != 120 {
		t.Fatalf("XRANGE = %d, %v", len(ms), err)
	}
	for _, m := range ms {
		for k, v := range m.Values {
			if k != "x" || strings.Contains(v.(string), "okapi") {
				t.Fatalf("stream entry %s holds field %q = %q, want only sealed \"x\"", m.ID, k, v)
			}
		}
	}
}

// TestSealedFeedWithholdsMovedEntries: a sealed entry copied to another
// position does not open there; Range skips it instead of failing.
func TestSealedFeedWithholdsMovedEntries(t *testing.T) {
	e := newEnv(t)
	a := e.sealedReplica(t, parseRing(t, seal.Generate()))
	ctx := context.Background()
	if _, err := a.hub.Publish(ctx, entries(checkout, "m", 2)); err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	key := e.prefix + "log:checkout/prod"
	ms, _ := c.XRange(ctx, key, "1-0", "1-0").Result()
	if err := c.XAdd(ctx, redisXAddArgs{key, "5-0", ms[0].Values["x"]}.args()).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := a.feed.Range(ctx, checkout, 0, time.Time{}, 0)
	if err != nil || !slices.Equal(seqsOf(got), []int64{1, 2}) {
		t.Fatalf("Range = %v, %v; want [1 2] (the copy at 5 withheld)", seqsOf(got), err)
	}
}

func TestSealedFeedCheckKeysNamesTheKey(t *testing.T) {
	e := newEnv(t)
	ring := parseRing(t, seal.Generate())
	a := e.sealedReplica(t, ring)
	if _, err := a.hub.Publish(context.Background(), entries(checkout, "k", 1)); err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string]*seal.Ring{"other key file": parseRing(t, seal.Generate()), "no key file": nil} {
		t.Run(name, func(t *testing.T) {
			f, err := NewFeed(FeedConfig{Client: e.client(t), Prefix: e.prefix, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			err = f.CheckKeys(context.Background())
			var uk *seal.UnknownKeyError
			if !errors.As(err, &uk) || uk.ID != ring.NewestID() || !strings.Contains(err.Error(), ring.NewestID()) {
				t.Fatalf("CheckKeys = %v, want an error naming key %s", err, ring.NewestID())
			}
		})
	}
	use, err := a.feed.KeyUse(context.Background())
	if err != nil || use[ring.NewestID()] != 1 || len(use) != 1 {
		t.Errorf("KeyUse = %v, %v; want {%s: 1}", use, err, ring.NewestID())
	}
}

type redisXAddArgs struct {
	stream, id string
	sealed     any
}

func (x redisXAddArgs) args() *redis.XAddArgs {
	return &redis.XAddArgs{Stream: x.stream, ID: x.id, Values: []any{"x", x.sealed}}
}
