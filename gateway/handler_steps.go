package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// The steps the API handlers share: read a body with its one free text,
// load a record or say 404, record-then-apply a change, answer a page.

// textBody decodes r's JSON body (may be empty) into body and returns the
// required free-text field text points into, cleaned; a missing or
// malformed one is a 400 naming field.
func (s *Server) textBody(r *http.Request, body any, field string, text *string) (string, error) {
	if err := decodeOptionalBody(r, body); err != nil {
		return "", err
	}
	return s.cleanText(field, *text, true)
}

// durationReason checks what a request for access asks: how long
// ("duration") and why ("reason", required, cleaned).
func (s *Server) durationReason(duration, reason string) (time.Duration, string, error) {
	dur, err := parseDuration(duration)
	if err != nil {
		return 0, "", err
	}
	reason, err = s.cleanText("reason", reason, true)
	return dur, reason, err
}

// notFound turns the store's not-found into a 404 saying msg; other errors
// pass through.
func notFound(err error, msg string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound(msg)
	}
	return err
}

// commit records ev, then applies change in one store transaction: no
// change without its audit event (fail closed). A change refused after the
// event was written (a conflict: someone else got there first) is recorded
// as not applied.
func (s *Server) commit(ctx context.Context, r *http.Request, ev audit.Event, change func(tx *store.Txn) error) error {
	if err := s.record(ctx, r, ev); err != nil {
		return err
	}
	if err := s.cfg.Store.Update(ctx, change); err != nil {
		s.recordNotApplied(ctx, r, ev, err)
		return err
	}
	return nil
}

// pageQuery reads a list endpoint's ?limit= (limitParam) and ?cursor=.
func pageQuery(r *http.Request) (store.Query, error) {
	q := r.URL.Query()
	limit, err := limitParam(q)
	if err != nil {
		return store.Query{}, err
	}
	return store.Query{Limit: limit, Cursor: q.Get("cursor")}, nil
}

// writePage answers a list endpoint with one page of records, each shown by
// view (an empty page is [], not null).
func writePage[T, V any](w http.ResponseWriter, recs []T, next string, view func(T) V) {
	items := make([]V, 0, len(recs))
	for _, rec := range recs {
		items = append(items, view(rec))
	}
	writeJSON(w, http.StatusOK, api.List[V]{Items: items, NextCursor: next})
}
