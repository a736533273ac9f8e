package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/loggate/loggate/gateway/api"
)

// The API's JSON shapes are package api's; these are how the client shows
// them.

// label is a person's name for a sentence.
func label(s api.Subject) string {
	switch {
	case s.Name != "" && s.Email != "" && s.Name != s.Email:
		return fmt.Sprintf("%s <%s>", s.Name, s.Email)
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	}
	return s.ID
}

// short is a name for a table cell.
func short(s api.Subject) string {
	if s.Email != "" {
		return s.Email
	}
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

// auditActor is who did an audited action, for a table cell.
func auditActor(e api.AuditEvent) string {
	a := e.Actor
	switch {
	case a.Email != "":
		return a.Email
	case a.Name != "":
		return a.Name
	case a.Subject != "":
		return a.Subject
	case a.ID != "":
		return a.Kind + ":" + a.ID
	}
	return a.Kind
}

// auditTarget is what an audited action was about: the stream and the ids.
func auditTarget(e api.AuditEvent) string {
	t := e.Target
	var parts []string
	if t.Service != "" || t.Env != "" {
		parts = append(parts, t.Service+"/"+t.Env)
	}
	for _, id := range []string{t.GrantID, t.RequestID, t.ReviewID, t.SourceID} {
		if id != "" {
			parts = append(parts, id)
		}
	}
	return strings.Join(parts, " ")
}

// listAll fetches pages of path (with query q) until limit items (0: all
// pages, at most 100 of them).
func (a *apiClient) listAll(ctx context.Context, path string, q url.Values, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if q == nil {
		q = url.Values{}
	}
	for range 100 {
		var page api.List[json.RawMessage]
		u := path
		if enc := q.Encode(); enc != "" {
			u += "?" + enc
		}
		if err := a.do(ctx, http.MethodGet, u, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" || (limit > 0 && len(out) >= limit) {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// listAs is listAll decoded into T, with the raw items kept for JSON output.
func listAs[T any](ctx context.Context, a *apiClient, path string, q url.Values, limit int) ([]T, []json.RawMessage, error) {
	raws, err := a.listAll(ctx, path, q, limit)
	if err != nil {
		return nil, nil, err
	}
	items, err := decodeEach[T](raws)
	return items, raws, err
}

// decodeEach decodes raw items into T, keeping the raw form for JSON output.
func decodeEach[T any](raws []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("unexpected item from the server: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// splitStream parses "service/env".
func splitStream(s string) (service, env string, ok bool) {
	service, env, ok = strings.Cut(s, "/")
	if !ok || service == "" || env == "" || strings.Contains(env, "/") {
		return "", "", false
	}
	return service, env, true
}
