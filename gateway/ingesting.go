package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/loggate/loggate/gateway/ingest"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

// HashSourceToken is how source tokens are stored: never in clear.
func HashSourceToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// source authenticates an ingest request by its bearer source token. The
// token is looked up by its hash, so no comparison of secrets happens here.
// A missing, unknown or revoked token is 401 and audited as auth.failed
// with actor kind source.
//
// Without an Authorization header, a TLS client certificate may stand in
// for the token (CertSources); a bearer token, when given, decides. With
// Config.SourceAuthBoth, a request needs both (sourceByBoth).
func (s *Server) source(r *http.Request) (store.Source, error) {
	if s.cfg.SourceAuthBoth {
		return s.sourceByBoth(r)
	}
	if r.Header.Get("Authorization") == "" {
		src, ok, err := s.certSource(r)
		if ok {
			if err != nil {
				return store.Source{}, err
			}
			return s.rateLimited(src)
		}
	}
	msg := "source token required (Authorization: Bearer <token>)"
	if s.certSources() != nil {
		msg = "source token (Authorization: Bearer <token>) or client certificate required"
	}
	src, err := s.tokenSource(r, msg)
	if err != nil {
		return store.Source{}, err
	}
	return s.rateLimited(src)
}

// sourceByBoth authenticates a request that must carry a verified client
// certificate mapped to streams and a valid source token: either alone is
// 401 (audited like other refusals), and the source may write only the
// streams both allow, so a stolen token without the key of a mapped
// certificate, or a certificate without the token, writes nothing.
func (s *Server) sourceByBoth(r *http.Request) (store.Source, error) {
	cert, ok, err := s.certSource(r)
	if err != nil {
		return store.Source{}, err
	}
	if !ok {
		s.sourceAuthFailed(r, sourceReasonNoCertificate, "", nil)
		return store.Source{}, errUnauthorized("client certificate required: this gateway needs both a client certificate and a source token from each source")
	}
	src, err := s.tokenSource(r, "source token (Authorization: Bearer <token>) required: this gateway needs both a client certificate and a source token from each source")
	if err != nil {
		return store.Source{}, err
	}
	src.Streams = intersectStreams(src.Streams, cert.Streams)
	return s.rateLimited(src)
}

// tokenSource is the source of r's bearer token; missing is the 401
// message when there is none.
func (s *Server) tokenSource(r *http.Request, missing string) (store.Source, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(h, "bearer ")
	}
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		s.sourceAuthFailed(r, sourceReasonNoCredentials, "", nil)
		return store.Source{}, errUnauthorized(missing)
	}
	src, err := s.cfg.Store.SourceByTokenHash(r.Context(), HashSourceToken(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.sourceAuthFailed(r, sourceReasonUnknown, token, nil)
		return store.Source{}, errUnauthorized("invalid source token")
	case err != nil:
		return store.Source{}, err
	case !src.RevokedAt.IsZero():
		s.sourceAuthFailed(r, sourceReasonRevoked, token, &src)
		return store.Source{}, errUnauthorized("invalid source token")
	}
	return src, nil
}

// intersectStreams is the streams both lists allow ("*" matches any
// service or env, as in store.Source.Allows).
func intersectStreams(a, b []store.StreamRef) []store.StreamRef {
	meet := func(x, y string) (string, bool) {
		switch {
		case x == "*":
			return y, true
		case y == "*", x == y:
			return x, true
		}
		return "", false
	}
	var out []store.StreamRef
	for _, x := range a {
		for _, y := range b {
			svc, ok1 := meet(x.Service, y.Service)
			env, ok2 := meet(x.Env, y.Env)
			if ok1 && ok2 {
				out = append(out, store.StreamRef{Service: svc, Env: env})
			}
		}
	}
	return out
}

// rateLimited passes src unless it is over its ingest rate.
func (s *Server) rateLimited(src store.Source) (store.Source, error) {
	if !s.ingestLimiter.allow(src.ID) {
		return store.Source{}, &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many ingest requests for this source; retry later"}
	}
	return src, nil
}

// readIngest reads the body within the decompressed-size limit.
func (s *Server) readIngest(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// The wire limit is generous; the real limit applies after decompression.
	r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxIngestBytes)
	body, err := ingest.ReadBody(r.Body, r.Header.Get("Content-Encoding"), s.limits.MaxIngestBytes)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ingest.ErrTooLarge), errors.As(err, &mbe):
		return nil, errTooLarge(fmt.Sprintf("body over %d bytes after decompression", s.limits.MaxIngestBytes))
	case errors.Is(err, ingest.ErrUnsupportedMediaType):
		return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: err.Error()}
	case err != nil:
		return nil, errBadRequest("cannot read body: " + err.Error())
	}
	return body, nil
}

func (s *Server) decodeError(err error) error {
	if errors.Is(err, ingest.ErrTooLarge) {
		return errTooLarge(err.Error())
	}
	if errors.Is(err, ingest.ErrUnsupportedMediaType) {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: err.Error()}
	}
	return errBadRequest(err.Error())
}

// accept authorises every entry's stream for src, redacts and publishes.
// A batch with any entry the source may not write is refused whole (403).
func (s *Server) accept(r *http.Request, src store.Source, entries []logs.Entry) (int, error) {
	for i := range entries {
		if err := checkEntryStream(i, entries[i].Service, entries[i].Env); err != nil {
			return 0, err
		}
		if !src.Allows(entries[i].Service, entries[i].Env) {
			s.metrics.ingestRejected.WithLabelValues("forbidden_stream").Inc()
			s.sourceWriteDenied(r, src, entries[i].Service, entries[i].Env)
			return 0, errForbidden(fmt.Sprintf("source may not write stream %s/%s", entries[i].Service, entries[i].Env))
		}
	}
	for i := range entries {
		red := s.cfg.Redactor
		if r, ok := s.cfg.RedactorsByEnv[entries[i].Env]; ok {
			red = r
		}
		red.Entry(&entries[i])
	}
	if _, err := s.cfg.Hub.Publish(r.Context(), entries); err != nil {
		return 0, errUnavailable("log pipeline unavailable", err)
	}
	s.metrics.ingestEntries.Add(float64(len(entries)))
	if s.cfg.Alerts != nil {
		s.cfg.Alerts.ObserveEntries(entries) // after redaction: rules see what viewers see
	}
	return len(entries), nil
}

func (s *Server) ingestOptions() ingest.Options {
	return ingest.Options{Now: s.now(), MaxLineBytes: s.limits.MaxLineBytes}
}

// handleIngestJSON takes NDJSON or a JSON array for one stream named in the
// query: POST /api/v1/ingest?service=S&env=E.
func (s *Server) handleIngestJSON(w http.ResponseWriter, r *http.Request) {
	src, err := s.source(r)
	if err != nil {
		s.writeIngestError(w, r, err)
		return
	}
	q := r.URL.Query()
	stream := logs.Stream{Service: q.Get("service"), Env: q.Get("env")}
	for _, p := range [][2]string{{"service", stream.Service}, {"env", stream.Env}} {
		if err := checkStreamParam(p[0], p[1]); err != nil {
			s.writeIngestError(w, r, err)
			return
		}
	}
	if !src.Allows(stream.Service, stream.Env) {
		s.metrics.ingestRejected.WithLabelValues("forbidden_stream").Inc()
		s.sourceWriteDenied(r, src, stream.Service, stream.Env)
		s.writeIngestError(w, r, errForbidden("source may not write stream "+stream.String()))
		return
	}
	body, err := s.readIngest(w, r)
	if err != nil {
		s.writeIngestError(w, r, err)
		return
	}
	opts := s.ingestOptions()
	opts.Mapping = ingest.Mapping{TimeField: q.Get("time_field"), LevelField: q.Get("level_field"), MessageField: q.Get("message_field")}
	entries, err := ingest.DecodeJSONLines(body, stream, opts)
	if err != nil {
		s.writeIngestError(w, r, s.decodeError(err))
		return
	}
	n, err := s.accept(r, src, entries)
	if err != nil {
		s.writeIngestError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"accepted": n})
}

// decodeFunc is an ingest format whose records name their own streams.
type decodeFunc func(body []byte, contentType string, opts ingest.Options) ([]logs.Entry, error)

// ingestBody authenticates the source, reads and decodes the body, and
// accepts its entries; it reports whether it succeeded (having written the
// error otherwise).
func (s *Server) ingestBody(w http.ResponseWriter, r *http.Request, decode decodeFunc) bool {
	src, err := s.source(r)
	if err == nil {
		var body []byte
		if body, err = s.readIngest(w, r); err == nil && len(body) == 0 {
			// Zero entries, as an empty NDJSON body is: shippers flush
			// empty batches, and no format needs a byte to say "nothing".
			return true
		} else if err == nil {
			var entries []logs.Entry
			if entries, err = decode(body, r.Header.Get("Content-Type"), s.ingestOptions()); err != nil {
				err = s.decodeError(err)
			} else {
				_, err = s.accept(r, src, entries)
			}
		}
	}
	if err != nil {
		s.writeIngestError(w, r, err)
		return false
	}
	return true
}

// handleIngestOTLP takes OTLP/HTTP logs (protobuf or JSON).
func (s *Server) handleIngestOTLP(w http.ResponseWriter, r *http.Request) {
	if !s.ingestBody(w, r, ingest.DecodeOTLP) {
		return
	}
	// An empty ExportLogsServiceResponse: full success.
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// handleIngestLoki takes the Loki push API (JSON or snappy protobuf).
func (s *Server) handleIngestLoki(w http.ResponseWriter, r *http.Request) {
	if s.ingestBody(w, r, ingest.DecodeLokiPush) {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) writeIngestError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		s.metrics.ingestRejected.WithLabelValues(ae.Code).Inc()
		if ae.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		if r.URL.Path == "/v1/logs" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-protobuf") {
			s.writeOTLPStatus(w, r, ae)
			return
		}
	}
	s.writeError(w, r, err)
}

// writeOTLPStatus answers a protobuf OTLP export with a google.rpc.Status
// body, as the OTLP/HTTP specification asks.
func (s *Server) writeOTLPStatus(w http.ResponseWriter, r *http.Request, ae *apiError) {
	code := map[int]int32{http.StatusBadRequest: 3, http.StatusUnauthorized: 16, http.StatusForbidden: 7,
		http.StatusRequestEntityTooLarge: 3, http.StatusUnsupportedMediaType: 3, http.StatusTooManyRequests: 8,
		http.StatusServiceUnavailable: 14}[ae.Status]
	if code == 0 {
		code = 13 // INTERNAL
	}
	body, err := proto.Marshal(&rpcstatus.Status{Code: code, Message: ae.Message})
	if err != nil {
		s.writeError(w, r, ae)
		return
	}
	s.log.Debug("otlp export refused", "status", ae.Status, "err", ae.Error(), "request_id", requestID(r.Context()))
	if ae.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(ae.Status)
	_, _ = w.Write(body)
}
