package alert

import "time"

// windowBuckets is how many buckets a sliding window has: its resolution is
// window/windowBuckets.
const windowBuckets = 30

// window counts events over the last size, in buckets. Not safe for
// concurrent use (the engine's mutex guards it).
type window struct {
	bucket int64 // nanoseconds per bucket
	counts [windowBuckets]int64
	ids    [windowBuckets]int64 // bucket number each slot holds
}

func newWindow(size time.Duration) window {
	b := int64(size) / windowBuckets
	if b <= 0 {
		b = 1
	}
	return window{bucket: b}
}

func (w *window) add(t time.Time, n int64) {
	id := t.UnixNano() / w.bucket
	i := id % windowBuckets
	if w.ids[i] != id {
		w.ids[i], w.counts[i] = id, 0
	}
	w.counts[i] += n
}

// count is the number of events in the buckets ending at t.
func (w *window) count(t time.Time) int64 {
	id := t.UnixNano() / w.bucket
	var n int64
	for i, b := range w.ids {
		if b > id-windowBuckets && b <= id {
			n += w.counts[i]
		}
	}
	return n
}

// buckets returns the non-empty buckets that count at t, as [bucket
// number, count].
func (w *window) buckets(t time.Time) [][2]int64 {
	id := t.UnixNano() / w.bucket
	var out [][2]int64
	for i, b := range w.ids {
		if b > id-windowBuckets && b <= id && w.counts[i] != 0 {
			out = append(out, [2]int64{b, w.counts[i]})
		}
	}
	return out
}

// merge adds n to bucket number id (another window's bucket of the same
// size); a bucket older than the one its slot holds is ignored.
func (w *window) merge(id, n int64) {
	i := id % windowBuckets
	if i < 0 {
		return
	}
	switch {
	case w.ids[i] == id:
		w.counts[i] += n
	case w.ids[i] < id:
		w.ids[i], w.counts[i] = id, n
	}
}
