package witness

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/loggate/loggate/gateway/audit"
)

// serveStore answers the public audit endpoints from a real store, as the
// gateway does; refuse makes /consistency answer 400.
func serveStore(t *testing.T, s *audit.Store, refuse *bool, reports *[]map[string]any) *httptest.Server {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/audit/keys", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"verifier_keys": s.VerifierKeys()}, nil)
	})
	mux.HandleFunc("GET /api/v1/audit/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		cp, err := s.LatestCheckpoint(r.Context())
		reply(w, cp, err)
	})
	mux.HandleFunc("GET /api/v1/audit/consistency", func(w http.ResponseWriter, r *http.Request) {
		if *refuse {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "to (9) is beyond the signed trail size 3"})
			return
		}
		from, _ := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
		p, err := s.Consistency(r.Context(), from, to)
		reply(w, p, err)
	})
	mux.HandleFunc("POST /api/v1/audit/witness-failures", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		*reports = append(*reports, body)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"event_id": "evt_1"})
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func TestHTTPSource(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), audit.Config{})
	add(t, s, 3, "a.b")
	var refuse bool
	var reports []map[string]any
	ts := serveStore(t, s, &refuse, &reports)
	src := &HTTPSource{BaseURL: ts.URL + "/", Token: "tok"}
	res, err := Check(ctx, src, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	add(t, s, 6, "a.b")
	if _, err := Check(ctx, src, res.State, Options{}); err != nil {
		t.Fatalf("over HTTP after growth: %v", err)
	}
	// A server that signs a bigger tree but refuses the proof fails the
	// check (it is not "unreachable").
	refuse = true
	_, err = Check(ctx, src, res.State, Options{})
	var f *Failure
	if !errors.As(err, &f) || f.Kind != KindProof {
		t.Fatalf("refused proof: %v, want a proof failure", err)
	}
	if id, err := src.ReportFailure(ctx, f); err != nil || id != "evt_1" || len(reports) != 1 || reports[0]["kind"] != KindProof {
		t.Fatalf("report: %q, %v, %v", id, err, reports)
	}
	if _, err := (&HTTPSource{BaseURL: ts.URL}).ReportFailure(ctx, f); !errors.Is(err, ErrNoToken) {
		t.Errorf("report without a token: %v, want ErrNoToken", err)
	}
	// An unreachable server is an error, not a failure.
	ts.Close()
	_, err = Check(ctx, src, res.State, Options{})
	if err == nil || errors.As(err, &f) {
		t.Errorf("unreachable: %v, want a plain error", err)
	}
}
