package logs

import "time"

// Retention bounds what is kept of one stream, in memory and on disk.
// An entry is dropped when any bound is exceeded.
type Retention struct {
	// MaxEntries is the number of entries kept. If zero, 10000.
	MaxEntries int
	// MaxBytes bounds the approximate memory of the kept entries. If zero, 16 MiB.
	MaxBytes int64
	// MaxAge drops entries observed longer ago than this. If zero, 24h.
	MaxAge time.Duration
}

// Retention defaults.
const (
	DefaultMaxEntries = 10000
	DefaultMaxBytes   = 16 << 20
	DefaultMaxAge     = 24 * time.Hour
)

func (r Retention) withDefaults() Retention {
	if r.MaxEntries <= 0 {
		r.MaxEntries = DefaultMaxEntries
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultMaxBytes
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	return r
}

// ring holds the retained entries of one stream in seq order. Seqs are
// gapless inside the ring, so the entry with seq s is at s-first().
// It is not safe for concurrent use: the owning stream's mutex guards it.
type ring struct {
	buf   []Entry // buf[start:] are the kept entries
	sizes []int   // sizes[i] is entrySize(&buf[i])
	start int
	bytes int64
}

func (r *ring) len() int { return len(r.buf) - r.start }

// first returns the seq of the oldest kept entry, or 0 when empty.
func (r *ring) first() int64 {
	if r.len() == 0 {
		return 0
	}
	return r.buf[r.start].Seq
}

// entries returns the kept entries; the slice is only valid under the lock.
func (r *ring) entries() []Entry { return r.buf[r.start:] }

func (r *ring) push(e Entry) {
	sz := entrySize(&e)
	r.buf = append(r.buf, e)
	r.sizes = append(r.sizes, sz)
	r.bytes += int64(sz)
}

// trim drops the oldest entries until the retention holds; an entry older
// than cutoff (by Observed) is dropped.
func (r *ring) trim(ret Retention, cutoff time.Time) {
	for r.len() > 0 {
		e := &r.buf[r.start]
		if r.len() <= ret.MaxEntries && r.bytes <= ret.MaxBytes && !e.Observed.Before(cutoff) {
			break
		}
		r.bytes -= int64(r.sizes[r.start])
		r.buf[r.start] = Entry{} // release strings and maps
		r.start++
	}
	// Compact once half the backing array is dead, so memory stays bounded
	// and the amortised cost per entry is constant.
	if r.start > 0 && r.start >= len(r.buf)/2 {
		n := copy(r.buf, r.buf[r.start:])
		copy(r.sizes, r.sizes[r.start:])
		clear(r.buf[n:])
		r.buf = r.buf[:n]
		r.sizes = r.sizes[:n]
		r.start = 0
	}
}

// after returns the kept entries with seq > seq.
func (r *ring) after(seq int64) []Entry {
	es := r.entries()
	if len(es) == 0 {
		return nil
	}
	i := seq - es[0].Seq + 1
	switch {
	case i <= 0:
		return es
	case i >= int64(len(es)):
		return nil
	}
	return es[i:]
}
