package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

// viewIDRE is the shape of the view ids newID("view_") makes.
var viewIDRE = regexp.MustCompile(`^view_[A-Za-z0-9_-]{1,64}$`)

// replayedView is what the trail says about one view.
type replayedView struct {
	closed *audit.Event // stream.closed, nil while open
	opened *audit.Event // stream.opened (success), nil if unknown or refused
}

// findView reads the view's stream.opened and stream.closed events.
// Without a view-id column in the trail it pages through the stream events,
// newest first, which costs one scan of the views recorded.
func (s *Server) findView(ctx context.Context, viewID string) (replayedView, error) {
	var out replayedView
	for _, action := range []string{"stream.closed", "stream.opened"} {
		q := audit.Query{Action: action, Limit: audit.MaxLimit}
		for {
			page, err := s.cfg.Audit.Search(ctx, q)
			if err != nil {
				return out, err
			}
			for i := range page.Items {
				ev := page.Items[i]
				if id, _ := ev.Details["view_id"].(string); id != viewID {
					continue
				}
				switch {
				case action == "stream.closed":
					out.closed = &ev
				case ev.Outcome == "success":
					out.opened = &ev
				}
				break
			}
			if (action == "stream.closed" && out.closed != nil) || (action == "stream.opened" && out.opened != nil) || page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		if out.closed != nil {
			return out, nil
		}
	}
	return out, nil
}

// handleViewReplay rebuilds the entries a closed view showed from the
// retained backlog, as the "entries" frames of a tail (NDJSON), followed by
// a {"type":"replay"} line saying whether their digest equals the one the
// view recorded. Security and admins only; every call is audited.
func (s *Server) handleViewReplay(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	viewID := r.PathValue("view_id")
	if !s.allowed(ctx, who, "replay_view") {
		s.recordBestEffort(ctx, r, audit.Event{Action: "view.replayed", Actor: userActor(who), Outcome: "denied",
			Reason: "not a member of security or the admins", Details: map[string]any{"view_id": truncate(viewID, 80)}})
		return errForbidden("replaying a view is for security and admins")
	}
	reason, err := s.cleanText("reason", r.URL.Query().Get("reason"), true)
	if err != nil {
		return err
	}
	if !viewIDRE.MatchString(viewID) {
		return errNotFound("no such view")
	}
	view, err := s.findView(ctx, viewID)
	if err != nil {
		return errUnavailable("audit trail unavailable", err)
	}
	switch {
	case view.closed == nil && view.opened != nil:
		return &apiError{Status: http.StatusConflict, Code: "view_open", Message: "the view is still open; it can be replayed once it has ended"}
	case view.closed == nil:
		return errNotFound("no such view")
	}
	closed := view.closed
	res := api.ReplayResult{Type: api.FrameReplay, ViewID: viewID, GrantID: closed.Target.GrantID, Service: closed.Target.Service,
		Env: closed.Target.Env, Viewer: closed.Actor.Email}
	if res.Viewer == "" {
		res.Viewer = closed.Actor.Subject
	}
	res.ViewEntries, _ = jsonInt(closed.Details["entries"])
	res.ExpectedSHA256, _ = closed.Details["entries_sha256"].(string)
	var rec logs.ViewRecord
	recorded := false
	if raw, ok := closed.Details["replay"]; ok {
		b, _ := json.Marshal(raw)
		recorded = json.Unmarshal(b, &rec) == nil && res.ExpectedSHA256 != ""
	}
	if err := s.record(ctx, r, audit.Event{Action: "view.replayed", Actor: userActor(who), Outcome: "success", Reason: reason,
		Target: closed.Target, Details: map[string]any{"view_id": viewID, "viewer": res.Viewer}}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if !recorded {
		res.Reason = "this view did not record what it delivered (a crash cut it off before its first save, or it was recorded before replay existed)"
		res.Missing = []api.ReplayMissing{{Reason: "not_recorded"}}
		return writeLine(w, res)
	}
	for _, k := range rec.Skips {
		res.Skips = append(res.Skips, api.ReplaySkip(k))
	}
	stream := logs.Stream{Service: closed.Target.Service, Env: closed.Target.Env}
	out, err := logs.Replay(s.cfg.Hub, stream, rec, func(data []byte, _ int) error {
		if _, err := w.Write(data); err != nil {
			return err
		}
		_, err := w.Write([]byte{'\n'})
		return err
	})
	if err != nil {
		if errors.Is(err, logs.ErrBadRecord) {
			res.Reason = "the view's record is malformed: " + err.Error()
			res.Missing = []api.ReplayMissing{{Reason: "not_recorded"}}
			return writeLine(w, res)
		}
		s.log.Debug("replay ended early", "view", viewID, "err", err)
		return nil // the client went away mid-stream; nothing more to say
	}
	res.Entries, res.EntriesSHA256 = out.Entries, out.EntriesDigest
	for _, m := range out.Missing {
		res.Missing = append(res.Missing, api.ReplayMissing(m))
	}
	res.Verified = len(out.Missing) == 0 && out.EntriesDigest == res.ExpectedSHA256
	switch {
	case res.Verified:
	case len(out.Missing) > 0:
		res.Reason = fmt.Sprintf("%d part(s) of the view could not be rebuilt; see missing", len(out.Missing))
	default:
		res.Reason = "the rebuilt entries do not match the digest the view recorded"
	}
	return writeLine(w, res)
}

func writeLine(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// jsonInt reads a number decoded from JSON (float64) or set in Go (int*).
func jsonInt(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}
