package slogship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ingestServer is an HTTP server that collects NDJSON lines like
// loggate's ingest endpoint; gate, if non-nil, holds every request until
// it is closed.
type ingestServer struct {
	*httptest.Server
	mu    sync.Mutex
	lines []map[string]any
	got   chan struct{}
}

func newIngestServer(t *testing.T, gate chan struct{}) *ingestServer {
	is := &ingestServer{got: make(chan struct{}, 1000)}
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/ingest" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		if gate != nil {
			<-gate
		}
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("line %q is not JSON: %v", sc.Text(), err)
				continue
			}
			is.mu.Lock()
			is.lines = append(is.lines, m)
			is.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
		is.got <- struct{}{}
	}))
	t.Cleanup(is.Close)
	return is
}

func (is *ingestServer) messages() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	var out []string
	for _, l := range is.lines {
		out = append(out, l["msg"].(string))
	}
	return out
}

func newTestShipper(t *testing.T, url string, mod func(*Config)) *Shipper {
	t.Helper()
	cfg := Config{URL: url, Token: "tok", Service: "checkout", Env: "staging", NoControl: true,
		Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func flush(t *testing.T, s *Shipper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerLevels: at the normal level records go to both places; below
// it nothing happens until a rule raises it, and then only matching
// records are shipped, and not written locally.
func TestHandlerLevels(t *testing.T) {
	is := newIngestServer(t, nil)
	s := newTestShipper(t, is.URL, nil)
	var local bytes.Buffer
	log := slog.New(s.Handler(slog.NewTextHandler(&local, &slog.HandlerOptions{Level: slog.LevelInfo})))
	acme := log.With("tenant", "acme")

	log.Info("normal", "n", 1)
	log.Debug("hidden before")
	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug enabled with no rule")
	}
	s.rules.Store(newRuleSet([]Rule{{Level: slog.LevelDebug, Scope: []ScopeAttr{{"tenant", "acme"}}}}))
	acme.Debug("acme via With")
	log.Debug("acme via record", "tenant", "acme")
	log.WithGroup("req").Debug("grouped is another key", "tenant", "acme")
	log.Debug("other tenant", "tenant", "globex")
	log.Debug("no tenant")
	s.rules.Store(newRuleSet([]Rule{{Level: slog.LevelDebug}}))
	log.Debug("whole service")
	s.rules.Store(nil)
	log.Debug("hidden after")
	flush(t, s)

	want := []string{"normal", "acme via With", "acme via record", "whole service"}
	if got := is.messages(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("shipped %q, want %q", got, want)
	}
	if strings.Contains(local.String(), "level=DEBUG") || !strings.Contains(local.String(), "msg=normal") {
		t.Errorf("local output %q: want the info line and no debug line", local.String())
	}
	is.mu.Lock()
	first, second := is.lines[0], is.lines[1]
	is.mu.Unlock()
	if first["level"] != "info" || first["n"] != float64(1) || first["loggate.raised"] != nil ||
		second["level"] != "debug" || second["tenant"] != "acme" || second["loggate.raised"] != "debug" {
		t.Errorf("lines %v, %v", first, second)
	}
}

// TestLocalDebug: with LocalDebug a raised record is also written locally.
func TestLocalDebug(t *testing.T) {
	is := newIngestServer(t, nil)
	s := newTestShipper(t, is.URL, func(c *Config) { c.LocalDebug = true })
	var local bytes.Buffer
	log := slog.New(s.Handler(slog.NewTextHandler(&local, nil)))
	s.rules.Store(newRuleSet([]Rule{{Level: slog.LevelDebug}}))
	log.Debug("both")
	flush(t, s)
	if !strings.Contains(local.String(), "msg=both") {
		t.Errorf("local output %q, want the debug line", local.String())
	}
}

// TestDropsAreCountedAndAnnounced: a full queue drops records without
// blocking the caller; the next batch says how many.
func TestDropsAreCountedAndAnnounced(t *testing.T) {
	gate := make(chan struct{})
	is := newIngestServer(t, gate)
	s := newTestShipper(t, is.URL, func(c *Config) { c.QueueSize = 4; c.BatchSize = 1 })
	log := slog.New(s.Handler(slog.NewTextHandler(io.Discard, nil)))
	log.Info("first") // taken by the sender, whose POST waits at the gate
	for s.Stats().Dropped == 0 {
		log.Info("filler")
	}
	close(gate)
	flush(t, s)
	st := s.Stats()
	is.mu.Lock()
	defer is.mu.Unlock()
	var notice map[string]any
	for _, l := range is.lines {
		if strings.HasPrefix(l["msg"].(string), "slogship dropped") {
			notice = l
		}
	}
	if notice == nil || notice["level"] != "warn" || notice["slogship.dropped_total"] != float64(st.Dropped) {
		t.Errorf("notice %v, want one announcing %d drops", notice, st.Dropped)
	}
}

// TestUnreachableLoggate: logging stays local and never blocks; the lost
// records are counted.
func TestUnreachableLoggate(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	s := newTestShipper(t, url, func(c *Config) { c.NoControl = false })
	var local bytes.Buffer
	log := slog.New(s.Handler(slog.NewTextHandler(&local, nil)))
	for i := range 10 {
		log.Info("still here", "i", i)
	}
	flush(t, s)
	if n := strings.Count(local.String(), "still here"); n != 10 {
		t.Errorf("%d local lines, want 10", n)
	}
	if st := s.Stats(); st.Unsent != 10 || st.Connected || st.Rules != 0 {
		t.Errorf("stats %+v, want 10 unsent, not connected, no rules", st)
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug enabled without loggate")
	}
}
