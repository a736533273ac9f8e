package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sort"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// knownStreams are the streams some source may write or that have entries.
// A store failure is returned (fail closed: 503), not read as "no streams".
func (s *Server) knownStreams(ctx context.Context) ([]store.StreamRef, error) {
	seen := map[store.StreamRef]bool{}
	cursor := ""
	for range 50 {
		srcs, next, err := s.cfg.Store.Sources(ctx, store.Query{State: "active", Limit: 1000, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, src := range srcs {
			for _, st := range src.Streams {
				if st.Service != "*" && st.Env != "*" {
					seen[st] = true
				}
			}
		}
		if cursor = next; next == "" {
			break
		}
	}
	if cs := s.certSources(); cs != nil {
		for _, m := range cs.Sources {
			for _, st := range m.Streams {
				if st.Service != "*" && st.Env != "*" {
					seen[st] = true
				}
			}
		}
	}
	for _, info := range s.cfg.Hub.Streams() {
		seen[store.StreamRef{Service: info.Stream.Service, Env: info.Stream.Env}] = true
	}
	out := make([]store.StreamRef, 0, len(seen))
	for st := range seen {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Env < out[j].Env
	})
	return out, nil
}

func (s *Server) knownStream(ctx context.Context, service, env string) (bool, error) {
	sts, err := s.knownStreams(ctx)
	for _, st := range sts {
		if st.Service == service && st.Env == env {
			return true, nil
		}
	}
	return false, err
}

// handleStreams lists the streams the caller may ask for and what policy
// would require for each.
func (s *Server) handleStreams(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	items := []api.Stream{}
	subj := policySubject(subjectOf(who))
	sts, err := s.knownStreams(ctx)
	if err != nil {
		return err
	}
	for _, st := range sts {
		d, err := s.cfg.Policy.Decide(ctx, policy.Input{Action: "probe", Requester: subj, Service: st.Service,
			Env: st.Env, Time: s.now()})
		if err != nil || !d.Allow {
			continue
		}
		bg, err := s.cfg.Policy.Decide(ctx, policy.Input{Action: "probe", Requester: subj, Service: st.Service,
			Env: st.Env, Time: s.now(), BreakGlass: true, Reason: "probe: may this person break glass?"})
		items = append(items, api.Stream{Service: st.Service, Env: st.Env, AutoApprove: d.AutoApprove(),
			ApprovalsRequired: d.ApprovalsRequired, ApproverGroups: nonNil(d.ApproverGroups),
			MaxDuration: durString(d.MaxDuration), MaxLookback: durString(d.MaxLookback),
			BreakGlassAllowed: err == nil && bg.Allow && bg.BreakGlassAllowed, ReasonPattern: d.ReasonPattern,
			PolicyRevision: d.Revision})
	}
	writeJSON(w, http.StatusOK, api.List[api.Stream]{Items: items})
	return nil
}

func viewStreams(refs []store.StreamRef) []api.StreamRef {
	out := make([]api.StreamRef, 0, len(refs))
	for _, r := range refs {
		out = append(out, api.StreamRef{Service: r.Service, Env: r.Env})
	}
	return out
}

func viewSource(src store.Source) api.Source {
	return api.Source{ID: src.ID, Name: src.Name, Streams: viewStreams(src.Streams), CreatedAt: src.CreatedAt,
		CreatedBy: src.CreatedBy, RevokedAt: timePtr(src.RevokedAt)}
}

func (s *Server) handleListSources(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if !s.allowed(r.Context(), who, "manage_sources") {
		return errForbidden("sources are managed by loggate-admins")
	}
	sq, err := pageQuery(r)
	if err != nil {
		return err
	}
	srcs, next, err := s.cfg.Store.Sources(r.Context(), sq)
	if err != nil {
		return err
	}
	writePage(w, srcs, next, viewSource)
	return nil
}

// NewSourceToken makes a random source token: "lgs_" + 43 base64url chars.
func NewSourceToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "lgs_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateSource stores a source bound to streams, with the given token (or a
// new one) and returns it with the token. Used by the API and at start-up.
func (s *Server) CreateSource(ctx context.Context, actor audit.Actor, name, token string, streams []store.StreamRef) (api.Source, error) {
	if token == "" {
		token = NewSourceToken()
	}
	src := store.Source{ID: newID("src_"), Name: name, TokenHash: HashSourceToken(token), Streams: streams,
		CreatedAt: s.now(), CreatedBy: actor.Subject}
	if existing, err := s.cfg.Store.SourceByTokenHash(ctx, src.TokenHash); err == nil {
		if !existing.RevokedAt.IsZero() {
			// A revoked token stays revoked, whoever presents it again.
			return api.Source{}, errConflict("this source token was revoked; use a new one")
		}
		src.ID, src.CreatedAt = existing.ID, existing.CreatedAt
	}
	if err := s.commit(ctx, nil, audit.Event{Action: "source.created", Actor: actor, Outcome: "success",
		Target: audit.Target{SourceID: src.ID}, Details: map[string]any{"name": name, "streams": streams,
			"token_sha256_prefix": src.TokenHash[:12]}}, func(tx *store.Txn) error { return tx.PutSource(&src) }); err != nil {
		return api.Source{}, err
	}
	v := viewSource(src)
	v.Token = token
	return v, nil
}

func (s *Server) handleCreateSource(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if !s.allowed(r.Context(), who, "manage_sources") {
		return errForbidden("sources are managed by loggate-admins")
	}
	var body api.CreateSource
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if err := checkSourceName(body.Name); err != nil {
		return err
	}
	if len(body.Streams) == 0 {
		return errBadRequest(`"streams" must list at least one {"service","env"}`)
	}
	for i, st := range body.Streams {
		if err := checkSourceStream(i, "service", st.Service); err != nil {
			return err
		}
		if err := checkSourceStream(i, "env", st.Env); err != nil {
			return err
		}
	}
	streams := make([]store.StreamRef, 0, len(body.Streams))
	for _, st := range body.Streams {
		streams = append(streams, store.StreamRef(st))
	}
	v, err := s.CreateSource(r.Context(), userActor(who), body.Name, "", streams)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) handleRevokeSource(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	if !s.allowed(ctx, who, "manage_sources") {
		return errForbidden("sources are managed by loggate-admins")
	}
	src, err := s.cfg.Store.Source(ctx, r.PathValue("id"))
	if err != nil {
		return notFound(err, "no such source")
	}
	if !src.RevokedAt.IsZero() {
		return errConflict("source already revoked")
	}
	src.RevokedAt = s.now()
	if err := s.commit(ctx, r, audit.Event{Action: "source.revoked", Actor: userActor(who), Outcome: "success",
		Target: audit.Target{SourceID: src.ID}}, func(tx *store.Txn) error { return tx.PutSource(&src) }); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewSource(src))
	return nil
}

func (s *Server) handlePolicyInfo(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	writeJSON(w, http.StatusOK, map[string]any{"revision": s.cfg.Policy.Revision()})
	return nil
}
