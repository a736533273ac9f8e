package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/logs"
)

// readerState is what Run knows between reconnects: where each stream was
// read up to, so a reconnect resumes without loss or repetition.
type readerState struct {
	started  bool
	announce string            // id read up to in the announce stream
	ids      map[string]string // stream key -> id read up to
	streams  map[string]logs.Stream
	keys     []string // stream keys in a stable order
}

// Run reads every stream and hands new entries to hub until ctx ends. When
// Redis is lost it ends the hub's viewers (so tails end with "backend
// unavailable" instead of going silent), reports it in Healthy, and retries
// until Redis is back; then it resumes where it stopped. It returns nil
// when ctx ends or the hub is closed.
func (f *Feed) Run(ctx context.Context, hub *logs.Hub) error {
	st := &readerState{ids: map[string]string{}, streams: map[string]logs.Stream{}}
	backoff := 50 * time.Millisecond
	for {
		err := f.read(ctx, hub, st, &backoff)
		if ctx.Err() != nil || errors.Is(err, logs.ErrHubClosed) {
			return nil
		}
		if f.setHealth(err) {
			f.log.Error("log feed lost; ending live tails until Redis is back", "err", err)
		}
		hub.EndViewers(fmt.Errorf("%w: log feed: %v", ErrUnavailable, err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// start learns the streams that exist and starts each at its current end:
// older entries reach the hub through the Backlog when a stream is first
// used. The announce position is taken first, so a stream created meanwhile
// is announced.
func (f *Feed) start(ctx context.Context, st *readerState) error {
	ctx, cancel := context.WithTimeout(Background(ctx), 4*f.callTO)
	defer cancel()
	last, err := f.c.XRevRangeN(ctx, f.announceKey(), "+", "-", 1).Result()
	if err != nil {
		return err
	}
	st.announce = "0-0"
	if len(last) == 1 {
		st.announce = last[0].ID
	}
	names, err := f.c.SMembers(ctx, f.registryKey()).Result()
	if err != nil {
		return err
	}
	cmds := make([]*redis.StringCmd, len(names))
	_, err = f.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Get(ctx, f.seqKey(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, n := range names {
		seq, err := cmds[i].Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		f.addStream(st, n, strconv.FormatInt(seq, 10)+"-0")
	}
	st.started = true
	return nil
}

func (f *Feed) addStream(st *readerState, name, from string) {
	s, ok := parseStreamName(name)
	key := f.streamKey(name)
	if _, known := st.ids[key]; !ok || known {
		return
	}
	st.ids[key] = from
	st.streams[key] = s
	st.keys = append(st.keys, key)
}

func (f *Feed) read(ctx context.Context, hub *logs.Hub, st *readerState, backoff *time.Duration) error {
	if !st.started {
		if err := f.start(ctx, st); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithTimeout(Background(ctx), f.callTO)
	err := f.c.Ping(pctx).Err()
	cancel()
	if err != nil {
		return err
	}
	if f.setHealth(nil) {
		f.log.Info("log feed connected")
	}
	*backoff = 50 * time.Millisecond
	for {
		args := make([]string, 0, 2*len(st.keys)+2)
		args = append(args, f.announceKey())
		args = append(args, st.keys...)
		args = append(args, st.announce)
		for _, k := range st.keys {
			args = append(args, st.ids[k])
		}
		rctx, cancel := context.WithTimeout(Background(ctx), f.block+f.callTO)
		res, err := f.c.XRead(rctx, &redis.XReadArgs{Streams: args, Count: 1000, Block: f.block}).Result()
		cancel()
		if errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if err != nil {
			return err
		}
		if f.control != nil && hasEntries(res, f.announceKey()) {
			if err := f.control.Sync(ctx); err != nil {
				return err // nothing delivered: the reconnect reads these again
			}
		}
		for _, xs := range res {
			if len(xs.Messages) == 0 {
				continue
			}
			if xs.Stream == f.announceKey() {
				for _, m := range xs.Messages {
					if n, ok := m.Values["s"].(string); ok {
						f.addStream(st, n, "0-0") // new: read it from the start
					}
				}
				st.announce = xs.Messages[len(xs.Messages)-1].ID
				continue
			}
			s, ok := st.streams[xs.Stream]
			if !ok {
				continue
			}
			es := make([]logs.Entry, 0, len(xs.Messages))
			for _, m := range xs.Messages {
				e, err := f.decode(s, m)
				if err != nil {
					f.log.Error("skipping malformed feed entry", "stream", s.String(), "id", m.ID, "err", err)
					continue
				}
				es = append(es, e)
			}
			if _, err := hub.PublishAssigned(ctx, es); err != nil {
				return err
			}
			st.ids[xs.Stream] = xs.Messages[len(xs.Messages)-1].ID
		}
	}
}

// hasEntries says whether an XREAD answer holds log entries (not only
// stream announcements).
func hasEntries(res []redis.XStream, announce string) bool {
	for _, xs := range res {
		if xs.Stream != announce && len(xs.Messages) > 0 {
			return true
		}
	}
	return false
}
