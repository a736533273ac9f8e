package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The client's copies of the API's JSON shapes (gateway/views.go). Only the
// fields the client reads; JSON output passes the server's objects through.

type cliSubject struct {
	ID     string   `json:"id"`
	Email  string   `json:"email"`
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
}

func (s cliSubject) label() string {
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
func (s cliSubject) short() string {
	if s.Email != "" {
		return s.Email
	}
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

type cliDecision struct {
	Allow             bool     `json:"allow"`
	AutoApprove       bool     `json:"auto_approve"`
	Reasons           []string `json:"reasons"`
	ApprovalsRequired int      `json:"approvals_required"`
	ApproverGroups    []string `json:"approver_groups"`
	MaxDuration       string   `json:"max_duration"`
	MaxLookback       string   `json:"max_lookback"`
	BreakGlassAllowed bool     `json:"break_glass_allowed"`
	ReasonPattern     string   `json:"reason_pattern"`
}

type cliApproval struct {
	Approver cliSubject `json:"approver"`
	Verdict  string     `json:"verdict"`
	Comment  string     `json:"comment"`
	Time     time.Time  `json:"time"`
}

type cliRequest struct {
	ID              string        `json:"id"`
	State           string        `json:"state"`
	Service         string        `json:"service"`
	Env             string        `json:"env"`
	Duration        string        `json:"duration"`
	Reason          string        `json:"reason"`
	BreakGlass      bool          `json:"break_glass"`
	Extends         string        `json:"extends"`
	Requester       cliSubject    `json:"requester"`
	Decision        cliDecision   `json:"decision"`
	Approvals       []cliApproval `json:"approvals"`
	ApprovalsNeeded int           `json:"approvals_needed"`
	Grant           *cliGrant     `json:"grant"`
	CreatedAt       time.Time     `json:"created_at"`
	PendingUntil    *time.Time    `json:"pending_until"`
	ClosedBy        *cliSubject   `json:"closed_by"`
	ClosedComment   string        `json:"closed_comment"`
}

func (r cliRequest) stream() string { return r.Service + "/" + r.Env }

type cliGrant struct {
	ID           string      `json:"id"`
	RequestID    string      `json:"request_id"`
	State        string      `json:"state"`
	Service      string      `json:"service"`
	Env          string      `json:"env"`
	Holder       cliSubject  `json:"holder"`
	BreakGlass   bool        `json:"break_glass"`
	IssuedAt     time.Time   `json:"issued_at"`
	ExpiresAt    time.Time   `json:"expires_at"`
	EndedAt      *time.Time  `json:"ended_at"`
	RevokedBy    *cliSubject `json:"revoked_by"`
	RevokeReason string      `json:"revoke_reason"`
	MaxLookback  string      `json:"max_lookback"`
}

func (g cliGrant) stream() string { return g.Service + "/" + g.Env }

type cliStream struct {
	Service           string   `json:"service"`
	Env               string   `json:"env"`
	AutoApprove       bool     `json:"auto_approve"`
	ApprovalsRequired int      `json:"approvals_required"`
	ApproverGroups    []string `json:"approver_groups"`
	MaxDuration       string   `json:"max_duration"`
	MaxLookback       string   `json:"max_lookback"`
	BreakGlassAllowed bool     `json:"break_glass_allowed"`
	ReasonPattern     string   `json:"reason_pattern"`
}

type cliSource struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Streams []struct {
		Service string `json:"service"`
		Env     string `json:"env"`
	} `json:"streams"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	RevokedAt *time.Time `json:"revoked_at"`
	Token     string     `json:"token"`
}

type cliAuditEvent struct {
	ID    string    `json:"id"`
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Actor struct {
		Kind    string `json:"kind"`
		Subject string `json:"subject"`
		Email   string `json:"email"`
		Name    string `json:"name"`
		ID      string `json:"id"`
	} `json:"actor"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	Target  struct {
		RequestID string `json:"request_id"`
		GrantID   string `json:"grant_id"`
		ReviewID  string `json:"review_id"`
		SourceID  string `json:"source_id"`
		Service   string `json:"service"`
		Env       string `json:"env"`
	} `json:"target"`
	SourceAddr string         `json:"source_addr"`
	Details    map[string]any `json:"details"`
}

func (e cliAuditEvent) actor() string {
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

func (e cliAuditEvent) target() string {
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

// list is a page of raw items.
type list struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

// listAll fetches pages of path (with query q) until limit items (0: all
// pages, at most 100 of them).
func (a *apiClient) listAll(ctx context.Context, path string, q url.Values, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if q == nil {
		q = url.Values{}
	}
	for range 100 {
		var page list
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
