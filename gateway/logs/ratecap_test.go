package logs

import (
	"testing"
	"time"
)

// offerSteady publishes perSecond entries per second for d as a batch
// every 10 ms (the shape of a busy shipper), advancing clock, and returns
// how many entries it offered. Like a real shipper on a busy machine, about
// once a second (every 102nd batch) a batch is late and goes out together
// with the next one, 5 ms after that one was due, so some one-second window
// holds 102 batches: just over the cap, though the rate is under it.
func offerSteady(t *testing.T, h *Hub, clock *clock, perSecond int, d time.Duration) int {
	t.Helper()
	const tick = 10 * time.Millisecond
	offered, owed, held := 0, 0.0, 0
	for k := 0; time.Duration(k)*tick < d; k++ {
		owed += float64(perSecond) * tick.Seconds()
		n := int(owed)
		owed -= float64(n)
		switch {
		case k%102 == 100:
			held = n // late: sent with the next batch
		case held > 0:
			clock.Advance(5 * time.Millisecond)
			publish(t, h, makeEntries("late", held))
			publish(t, h, makeEntries("steady", n))
			offered += held + n
			held = 0
			clock.Advance(tick - 5*time.Millisecond)
			continue
		default:
			publish(t, h, makeEntries("steady", n))
			offered += n
		}
		clock.Advance(tick)
	}
	return offered
}

// receiveAll reads v's messages until it has want entries and returns the
// notice codes seen on the way.
func receiveAll(t *testing.T, v *Viewer, want int64) (codes []string) {
	t.Helper()
	var got int64
	for got < want {
		w := decode(t, recv(t, v))
		switch w.Type {
		case TypeNotice:
			codes = append(codes, w.Code)
		case TypeEntries:
			got += int64(len(w.Entries))
		default:
			t.Fatalf("unexpected %s message", w.Type)
		}
	}
	return codes
}

// The cap is a rate, not a window count: a viewer offered just under it in
// 10 ms bursts gets every entry, and one offered twice the cap gets about
// the cap, with the rest announced and counted as sampled.
func TestRateCapIsATokenBucket(t *testing.T) {
	const limit = 5000
	tests := []struct {
		name           string
		factor         float64
		wantSampledMin float64 // fraction of offered
		wantSampledMax float64
		wantNotice     bool
	}{
		{name: "0.99x the cap", factor: 0.99, wantSampledMin: 0, wantSampledMax: 0},
		{name: "2x the cap", factor: 2, wantSampledMin: 0.40, wantSampledMax: 0.50, wantNotice: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeClock(t)
			h := newTestHub(t, HubConfig{MaxViewerRate: limit, QueueSize: 8192, Now: clock.Now})
			v := subscribe(t, h, SubscribeOptions{})
			offered := offerSteady(t, h, clock, int(tt.factor*limit), 10*time.Second)
			sampled := v.Stats().Sampled
			frac := float64(sampled) / float64(offered)
			if frac < tt.wantSampledMin || frac > tt.wantSampledMax {
				t.Errorf("sampled %d of %d offered (%.3f), want between %.2f and %.2f",
					sampled, offered, frac, tt.wantSampledMin, tt.wantSampledMax)
			}
			if d := v.Stats().Dropped; d != 0 {
				t.Fatalf("dropped %d entries; the queue must hold the whole test", d)
			}
			codes := receiveAll(t, v, int64(offered)-sampled)
			gotNotice := len(codes) > 0 && codes[0] == "sampling"
			if gotNotice != tt.wantNotice {
				t.Errorf("notices = %v, want a sampling notice: %v", codes, tt.wantNotice)
			}
			if tt.wantNotice && len(codes) != 1 {
				t.Errorf("notices = %v, want one sampling notice for the whole episode", codes)
			}
		})
	}
}
