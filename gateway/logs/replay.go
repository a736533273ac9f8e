package logs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// maxRecordRanges bounds the delivered ranges and the skipped ranges a
// ViewRecord holds, so that it fits in one audit event (each is a few dozen
// bytes of JSON). A view that breaks its ranges more often is recorded as
// truncated and cannot be replayed in full.
const maxRecordRanges = 512

// maxRecordEpochs and maxRecordEpochBytes bound the filter epochs a
// ViewRecord holds (a client may change its filter at will, each filter up
// to a WebSocket message): past either, further filters are applied but not
// recorded, and what they deliver makes the record truncated.
const (
	maxRecordEpochs     = 128
	maxRecordEpochBytes = 24 << 10
)

// Skip reasons of a SkipRange.
const (
	SkipSlowClient = "slow_client" // the viewer's queue was full
	SkipPaused     = "paused"      // the viewer had paused the stream
)

// ViewRecord says which entries a view delivered, without their content:
// the filter epochs it used and the seq ranges in which it received every
// entry its epoch's filter matched. It is kept in the view's audit events,
// so that Replay can rebuild the entries from the backlog and a reviewer
// can check them against the view's entries digest.
type ViewRecord struct {
	// Epochs are the filters in force, in order: a backfill epoch first
	// when the view started with one, then one per SetFilter.
	Epochs []ReplayEpoch `json:"epochs"`
	// Ranges are the delivered ranges, in delivery order.
	Ranges []SeqRange `json:"ranges"`
	// Skips are the ranges of matching entries not delivered (drops,
	// pauses), for the reviewer; Replay does not need them.
	Skips []SkipRange `json:"skips,omitempty"`
	// Truncated is set when Ranges overflowed maxRecordRanges.
	Truncated bool `json:"truncated,omitempty"`
}

// ReplayEpoch is the selection in force for part of a view.
type ReplayEpoch struct {
	Filter Filter `json:"filter"`
	// Since bounds a backfill that counted back (Lines or Since): it
	// delivered the matching entries of its range with Time at or after it.
	Since time.Time `json:"since,omitzero"`
	// Backfill marks the epoch of the entries sent before the live ones.
	Backfill bool `json:"backfill,omitempty"`
}

// SeqRange is a delivered range: every entry with From <= seq <= To that
// Epoch's selection matched was delivered, unless Sampled (the rate cap
// thinned the range, so which ones were delivered is not recorded).
type SeqRange struct {
	Epoch   int   `json:"epoch"`
	From    int64 `json:"from"`
	To      int64 `json:"to"`
	Sampled bool  `json:"sampled,omitempty"`
}

// SkipRange is a range of matching entries a view did not deliver.
type SkipRange struct {
	Reason  string `json:"reason"`
	From    int64  `json:"from"`
	To      int64  `json:"to"`
	Entries int64  `json:"entries"`
}

// RangeReader reads a stream's kept entries with seq > afterSeq, in seq
// order; Hub.Range implements it.
type RangeReader interface {
	Range(s Stream, afterSeq int64, limit int) ([]Entry, error)
}

// Missing is a part of a view that a replay could not rebuild.
type Missing struct {
	// From and To are the seqs (inclusive) the part spans.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Reason is "retention" (the backlog no longer holds those seqs),
	// "sampled" (the rate cap thinned the range; its entries are not
	// shown, as showing them all would show more than the view did),
	// "unreadable" (the backlog could not return them, e.g. the key that
	// sealed them is gone) or "not_recorded" (the record was truncated).
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// ReplayResult is what a replay rebuilt.
type ReplayResult struct {
	Entries int64 `json:"entries"`
	// EntriesDigest is the entries digest of what was rebuilt, to compare
	// with the view's ViewerStats.EntriesDigest.
	EntriesDigest string `json:"entries_sha256"`
	// Missing lists what could not be rebuilt; empty when complete.
	Missing []Missing `json:"missing,omitempty"`
}

// replayPage is how many entries Replay reads from the backlog at a time.
const replayPage = 2000

// ErrBadRecord is returned (wrapped) for a ViewRecord that cannot describe
// a view: an epoch out of range, a range with From > To or out of order.
var ErrBadRecord = errors.New("malformed view record")

// Replay rebuilds the entries a view delivered, from r, as "entries"
// messages (at most maxEntriesPerMessage entries each) handed to emit in
// delivery order. It only ever emits entries inside rec's unsampled ranges
// that the range's epoch selects, so it shows nothing the view did not.
// Parts it cannot rebuild are listed in the result's Missing; an error
// means the replay stopped (emit failed, or the record is malformed).
func Replay(r RangeReader, s Stream, rec ViewRecord, emit func(data []byte, entries int) error) (ReplayResult, error) {
	var res ReplayResult
	matchers := make([]*Matcher, len(rec.Epochs))
	for i, ep := range rec.Epochs {
		m, err := ep.Filter.Compile()
		if err != nil {
			return res, fmt.Errorf("%w: epoch %d: %v", ErrBadRecord, i, err)
		}
		matchers[i] = m
	}
	lastTo := make(map[int]int64, len(rec.Epochs))
	for i, rg := range rec.Ranges {
		if rg.Epoch < 0 || rg.Epoch >= len(rec.Epochs) || rg.From <= 0 || rg.From > rg.To {
			return res, fmt.Errorf("%w: range %d", ErrBadRecord, i)
		}
		if rg.From <= lastTo[rg.Epoch] {
			return res, fmt.Errorf("%w: range %d overlaps an earlier range of its epoch", ErrBadRecord, i)
		}
		lastTo[rg.Epoch] = rg.To
	}
	h := sha256.New()
	var buf []Entry
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		data, sums := encodeEntriesSums(buf, true)
		h.Write(sums)
		res.Entries += int64(len(buf))
		n := len(buf)
		buf = buf[:0]
		return emit(data, n)
	}
	// Retention removes a stream's oldest entries first: a hole before any
	// entry was found is retention; one after is an entry the backlog
	// withholds (sealed with a key no longer in the key file, or moved) or
	// never got (lost in a crash before it was written).
	seen := false
	hole := func(from, to int64) {
		m := Missing{From: from, To: to, Reason: "retention", Detail: "removed by the backlog's retention"}
		if seen {
			m.Reason, m.Detail = "unreadable", "not in the backlog: withheld (sealed with a key no longer in the key file, or moved) or never written"
		}
		res.Missing = append(res.Missing, m)
	}
	for _, rg := range rec.Ranges {
		if rg.Sampled {
			res.Missing = append(res.Missing, Missing{From: rg.From, To: rg.To, Reason: "sampled",
				Detail: "the rate cap delivered a sample of this range, and which entries is not recorded"})
			continue
		}
		ep, m := rec.Epochs[rg.Epoch], matchers[rg.Epoch]
		next := rg.From // the next seq expected
		cursor := rg.From - 1
	read:
		for {
			es, err := r.Range(s, cursor, replayPage)
			if err != nil {
				if ferr := flush(); ferr != nil {
					return res, ferr
				}
				res.Missing = append(res.Missing, Missing{From: next, To: rg.To, Reason: "unreadable", Detail: err.Error()})
				break
			}
			if len(es) == 0 {
				if next <= rg.To {
					hole(next, rg.To)
				}
				break
			}
			for i := range es {
				e := &es[i]
				if e.Seq > rg.To {
					if next <= rg.To {
						hole(next, rg.To)
					}
					break read
				}
				if e.Seq > next {
					hole(next, e.Seq-1)
				}
				seen = true
				next = e.Seq + 1
				if !m.Match(e) || (!ep.Since.IsZero() && e.Time.Before(ep.Since)) {
					continue
				}
				buf = append(buf, *e)
				if len(buf) == maxEntriesPerMessage {
					if err := flush(); err != nil {
						return res, err
					}
				}
			}
			cursor = es[len(es)-1].Seq
			if cursor >= rg.To {
				break
			}
		}
		if err := flush(); err != nil {
			return res, err
		}
	}
	if rec.Truncated {
		res.Missing = append(res.Missing, Missing{Reason: "not_recorded",
			Detail: fmt.Sprintf("the view broke its ranges more than %d times; the rest is not recorded", maxRecordRanges)})
	}
	res.EntriesDigest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}
