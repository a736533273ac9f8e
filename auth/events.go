package auth

import (
	"context"
	"sync"
	"time"
)

// emitTimeout bounds one OnEvent call made outside a request.
const emitTimeout = 5 * time.Second

// overflowAddr stands for every address once the aggregator tracks max keys.
const overflowAddr = "(many)"

// failureAggregator turns a flood of auth.failed events into a few: per
// (reason, address) and window, the first failure is emitted at once with
// Count 1 and the rest are emitted as one event with their Count when the
// window ends (or on Close). Memory is bounded by max keys.
//
// It owns one goroutine (the flusher), stopped by close.
type failureAggregator struct {
	a      *Authenticator
	window time.Duration
	max    int

	mu      sync.Mutex // guards pending
	pending map[failKey]*failBucket

	stop chan struct{}
	done chan struct{}
}

type failKey struct{ reason, addr string }

type failBucket struct {
	start time.Time
	ev    Event // the window's first failure, as a template
	count int   // failures since start not yet emitted
}

func newFailureAggregator(a *Authenticator, window time.Duration, max int) *failureAggregator {
	f := &failureAggregator{
		a: a, window: window, max: max,
		pending: make(map[failKey]*failBucket),
		stop:    make(chan struct{}), done: make(chan struct{}),
	}
	go f.loop()
	return f
}

func (f *failureAggregator) loop() {
	defer close(f.done)
	t := time.NewTicker(f.window)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.flush(false)
		}
	}
}

func (f *failureAggregator) close() {
	close(f.stop)
	<-f.done
	f.flush(true)
}

// add records one failure.
func (f *failureAggregator) add(ev Event) {
	now := f.a.now()
	k := failKey{ev.Reason, ev.RemoteAddr}
	var out []Event
	f.mu.Lock()
	b, ok := f.pending[k]
	if !ok && len(f.pending) >= f.max {
		k.addr = overflowAddr
		ev.RemoteAddr, ev.UserAgent = overflowAddr, ""
		b, ok = f.pending[k]
	}
	switch {
	case ok && now.Sub(b.start) < f.window:
		b.count++
	default:
		if ok && b.count > 0 {
			out = append(out, b.summary())
		}
		f.pending[k] = &failBucket{start: now, ev: ev}
		ev.Count = 1
		out = append(out, ev)
	}
	f.mu.Unlock()
	f.send(out)
}

// flush emits the counts of ended windows (all windows when all is set).
func (f *failureAggregator) flush(all bool) {
	now := f.a.now()
	var out []Event
	f.mu.Lock()
	for k, b := range f.pending {
		if !all && now.Sub(b.start) < f.window {
			continue
		}
		if b.count > 0 {
			out = append(out, b.summary())
		}
		delete(f.pending, k)
	}
	f.mu.Unlock()
	f.send(out)
}

func (b *failBucket) summary() Event {
	ev := b.ev
	ev.Count = b.count
	ev.Detail = "aggregated: " + ev.Detail
	ev.TokenHash = ""
	return ev
}

func (f *failureAggregator) send(evs []Event) {
	for _, ev := range evs {
		ctx, cancel := context.WithTimeout(context.Background(), emitTimeout)
		if err := f.a.emit(ctx, ev); err != nil {
			f.a.log.Error("audit auth.failed dropped", "reason", ev.Reason, "count", ev.Count, "err", err)
		}
		cancel()
	}
}
