package cluster

import (
	"context"
	"fmt"

	"github.com/loggate/loggate/gateway/audit"
)

// After returns up to limit records with seq > afterSeq, oldest first: the
// exact stored bytes and hash, as (*audit.Store).After returns them. It is
// the feed for audit sinks (it satisfies sink.Source). A limit outside
// 1..audit.MaxAfterLimit means audit.MaxAfterLimit.
func (a *Audit) After(ctx context.Context, afterSeq int64, limit int) ([]audit.Record, error) {
	if limit <= 0 || limit > audit.MaxAfterLimit {
		limit = audit.MaxAfterLimit
	}
	var out []audit.Record
	err := a.scan(ctx, false, max(afterSeq, 0), func(s stored) (bool, error) {
		if len(s.rec) < 2 || s.rec[len(s.rec)-1] != '}' {
			return false, fmt.Errorf("%w: seq %d: malformed record", audit.ErrTampered, s.seq)
		}
		ev, err := s.event()
		if err != nil {
			return false, err
		}
		out = append(out, audit.Record{Seq: s.seq, ID: ev.ID, Time: ev.Time.UTC(), Action: ev.Action,
			Bytes: s.rec, Hash: s.hash})
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit after: %w", err)
	}
	return out, nil
}
