package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
)

// The endpoints a witness needs (checkpoint, keys, consistency) are public:
// they reveal the trail's size and Merkle hashes, never an event, and a
// witness is best run by someone who may not read the trail. Reporting a
// witness failure writes to the trail, so it needs authentication (any
// caller; the report records who sent it).

// ActionWitnessFailed is recorded when a witness reports that the trail does
// not extend what it saw before.
const ActionWitnessFailed = "audit.witness_failed"

// handleAuditCheckpoint serves the newest signed checkpoint: origin, size,
// root hash, key id, signature and the signed note itself.
func (s *Server) handleAuditCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.cfg.Audit.LatestCheckpoint(r.Context())
	if err != nil {
		s.writeError(w, r, errUnavailable("no checkpoint available", err))
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

// handleAuditKeys publishes the verifier keys of every checkpoint signing
// key, so anyone can check an exported checkpoint.
func (s *Server) handleAuditKeys(w http.ResponseWriter, r *http.Request) {
	keys := s.cfg.Audit.VerifierKeys()
	if len(keys) == 0 {
		s.writeError(w, r, errNotFound("this audit backend signs no checkpoints"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"verifier_keys": keys,
		"format": "golang.org/x/mod/sumdb/note verifier keys (Ed25519)"})
}

// handleAuditConsistency serves the proof that the tree of size from is a
// prefix of the tree of size to (both required; 1 <= from <= to <= the
// signed size), with the newest signed checkpoint.
func (s *Server) handleAuditConsistency(w http.ResponseWriter, r *http.Request) {
	from, to, err := parseProofRange(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.cfg.Audit.Consistency(r.Context(), from, to)
	var re *audit.RangeError
	switch {
	case errors.As(err, &re):
		s.writeError(w, r, errBadRequest(re.Msg))
		return
	case err != nil:
		s.writeError(w, r, errUnavailable("audit trail unavailable", err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// parseProofRange reads from and to: each required, once, a decimal tree
// size; the range itself is checked against the trail by the store.
func parseProofRange(q url.Values) (from, to int64, err error) {
	if from, err = parseTreeSize(q, "from"); err != nil {
		return 0, 0, err
	}
	if to, err = parseTreeSize(q, "to"); err != nil {
		return 0, 0, err
	}
	if err := audit.CheckProofRange(from, to, to); err != nil {
		var re *audit.RangeError
		_ = errors.As(err, &re)
		return 0, 0, errBadRequest(re.Msg)
	}
	return from, to, nil
}

func parseTreeSize(q url.Values, name string) (int64, error) {
	vs := q[name]
	switch {
	case len(vs) == 0 || vs[0] == "":
		return 0, errBadRequest(fmt.Sprintf("%s is required: a tree size (e.g. %s=1)", name, name))
	case len(vs) > 1:
		return 0, errBadRequest(fmt.Sprintf("%s is given %d times; give it once", name, len(vs)))
	}
	v := vs[0]
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errBadRequest(fmt.Sprintf("%s must be a whole number (a tree size), not %q", name, truncate(v, 40)))
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("%s %s is out of range", name, truncate(v, 40)))
	}
	return n, nil
}

// witnessReport is what `loggate audit witness` posts when the trail does
// not extend what it saw.
type witnessReport struct {
	Kind    string          `json:"kind"`    // rollback, fork, truncation, key, proof, stale
	Message string          `json:"message"` // the witness's explanation
	Trusted *witnessTreeRef `json:"trusted"` // the checkpoint the witness kept
	Seen    *witnessTreeRef `json:"seen"`    // the checkpoint the server served
}

type witnessTreeRef struct {
	Size     int64  `json:"size"`
	RootHash string `json:"root_hash"`
	KeyID    string `json:"key_id,omitempty"`
}

var witnessKinds = map[string]bool{"rollback": true, "fork": true, "truncation": true, "key": true, "proof": true, "stale": true}

// handleWitnessFailure records an audit.witness_failed event (201 with its
// id). Any authenticated caller may report; the event names who did.
func (s *Server) handleWitnessFailure(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var body witnessReport
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if !witnessKinds[body.Kind] {
		return errBadRequest(`"kind" must be one of rollback, fork, truncation, key, proof, stale`)
	}
	msg, err := s.cleanText("message", body.Message, true)
	if err != nil {
		return err
	}
	details := map[string]any{"kind": body.Kind}
	for name, ref := range map[string]*witnessTreeRef{"trusted": body.Trusted, "seen": body.Seen} {
		if ref == nil {
			continue
		}
		if ref.Size < 0 {
			return errBadRequest(fmt.Sprintf(`"%s.size" must not be negative`, name))
		}
		if _, err := audit.DecodeHash(ref.RootHash); err != nil {
			return errBadRequest(fmt.Sprintf(`"%s.root_hash" must be a base64 SHA-256 hash`, name))
		}
		if len(ref.KeyID) > 200 {
			return errBadRequest(fmt.Sprintf(`"%s.key_id" is longer than 200 bytes`, name))
		}
		details[name] = map[string]any{"size": ref.Size, "root_hash": ref.RootHash, "key_id": ref.KeyID}
	}
	ev := audit.Event{Action: ActionWitnessFailed, Actor: userActor(who), Outcome: audit.OutcomeFailure,
		Reason: msg, Details: details}
	ev.RequestID = requestID(r.Context())
	ev.SourceAddr = clientAddrFrom(r.Context())
	ev.UserAgent = truncate(r.UserAgent(), 256)
	stored, err := s.cfg.Audit.Append(r.Context(), ev)
	if err != nil {
		s.metrics.auditFailures.Inc()
		return errAudit(err)
	}
	s.metrics.auditEvents.WithLabelValues(ev.Action).Inc()
	s.log.Warn("audit witness reported a failure", "kind", body.Kind, "event_id", stored.ID)
	writeJSON(w, http.StatusCreated, map[string]string{"event_id": stored.ID})
	return nil
}
