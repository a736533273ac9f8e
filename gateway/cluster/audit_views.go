package cluster

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/loggate/loggate/gateway/audit"
)

// DetailReplica is the stream.opened details key naming the replica that
// serves the view.
const DetailReplica = "replica"

// OpenViews returns the successful stream.opened events of this replica
// (details.replica equal to AuditConfig.ReplicaID) that no later
// stream.closed closes (matched on details.view_id), oldest first: at
// start-up, the views the replica's last run left open when it died. Views
// of other replicas are never reported, since they may still be live;
// without a ReplicaID nothing is. It reads the whole trail.
func (a *Audit) OpenViews(ctx context.Context) ([]audit.Event, error) {
	if a.replica == "" {
		return nil, nil
	}
	open := map[string]audit.Event{}
	err := a.scan(ctx, false, 0, func(s stored) (bool, error) {
		if !actionIs(s.rec, audit.ActionStreamOpened) && !actionIs(s.rec, audit.ActionStreamClosed) {
			return true, nil
		}
		ev, err := s.event()
		if err != nil {
			return false, err
		}
		id, _ := ev.Details[audit.DetailViewID].(string)
		if id == "" {
			return true, nil
		}
		switch {
		case ev.Action == audit.ActionStreamClosed:
			delete(open, id)
		case ev.Action == audit.ActionStreamOpened && ev.Outcome == audit.OutcomeSuccess:
			if r, _ := ev.Details[DetailReplica].(string); r == a.replica {
				open[id] = ev
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit open views: %w", err)
	}
	out := make([]audit.Event, 0, len(open))
	for _, ev := range open {
		out = append(out, ev)
	}
	slices.SortFunc(out, func(x, y audit.Event) int { return cmp.Compare(x.Seq, y.Seq) })
	return out, nil
}

// actionIs reports whether the stored record may hold action: a cheap
// byte test before decoding (false positives are decoded and checked).
func actionIs(rec []byte, action string) bool {
	return bytes.Contains(rec, []byte(`"action":"`+action+`"`))
}
