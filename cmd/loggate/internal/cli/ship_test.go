package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// fakeIngest records NDJSON batches and answers with scripted statuses.
type fakeIngest struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter) // consumed in order; then 200
	batches [][]string
	times   []time.Time
	headers []http.Header
	query   string
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = append(f.times, time.Now())
	f.headers = append(f.headers, r.Header.Clone())
	f.query = r.URL.RawQuery
	if len(f.answers) > 0 {
		a := f.answers[0]
		f.answers = f.answers[1:]
		a(w)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, "not gzip", 400)
		return
	}
	data, _ := io.ReadAll(zr)
	f.batches = append(f.batches, strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"))
	w.Write([]byte(`{"accepted":1}`))
}

func (f *fakeIngest) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []string
	for _, b := range f.batches {
		all = append(all, b...)
	}
	return all
}

func shipCLI(t *testing.T, server string) *cliT {
	ct := newCLI(t, server)
	ct.env["LOGGATE_SOURCE_TOKEN"] = "lgs_test_token"
	return ct
}

func TestShipStdinRetriesHonouringRetryAfter(t *testing.T) {
	f := &fakeIngest{answers: []func(http.ResponseWriter){
		func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); w.WriteHeader(429) },
		func(w http.ResponseWriter) { w.WriteHeader(503) },
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ct := shipCLI(t, srv.URL)
	ct.stdin = "plain text line\n{\"message\":\"json line\",\"level\":\"warn\"}\n\n{not json\nlast line without newline"
	_, errOut, code := ct.run("ship", "--service", "checkout", "--env", "dev", "-")
	if code != 0 {
		t.Fatalf("ship: exit %d: %s", code, errOut)
	}
	want := []string{`{"message":"plain text line"}`, `{"message":"json line","level":"warn"}`,
		`{"message":"{not json"}`, `{"message":"last line without newline"}`}
	if got := f.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("shipped:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(f.times) != 3 {
		t.Fatalf("requests = %d, want 3 (429, 503, 200)", len(f.times))
	}
	if gap := f.times[1].Sub(f.times[0]); gap < 900*time.Millisecond {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want about 1s", gap)
	}
	h := f.headers[2]
	if h.Get("Authorization") != "Bearer lgs_test_token" || h.Get("Content-Encoding") != "gzip" || h.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("headers = %v", h)
	}
	if f.query != "env=dev&service=checkout" {
		t.Errorf("query = %q", f.query)
	}
	if !strings.Contains(errOut, "429") || !strings.Contains(errOut, "retrying in 1s") || !strings.Contains(errOut, "sent 4 lines") {
		t.Errorf("stderr = %q", errOut)
	}
	if strings.Contains(errOut, "lgs_test_token") {
		t.Error("the source token was printed")
	}
}

func TestShipRefusals(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantCode int
		wantErr  string
	}{
		{"unknown token", 401, exitcode.Failure, "refused the source token"},
		{"stream not allowed", 403, exitcode.Denied, "denied: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(`{"error":"nope","code":"x"}`))
			}))
			defer srv.Close()
			ct := shipCLI(t, srv.URL)
			ct.stdin = "a\n"
			_, errOut, code := ct.run("ship", "--service", "s", "--env", "e")
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestShipSplitsOnTooLarge(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, _ := gzip.NewReader(r.Body)
		data, _ := io.ReadAll(zr)
		n := bytes.Count(data, []byte("\n"))
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		if n > 2 {
			w.WriteHeader(413)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	ct := shipCLI(t, srv.URL)
	ct.stdin = "1\n2\n3\n4\n5\n"
	_, errOut, code := ct.run("ship", "--service", "s", "--env", "e", "--flush", "1h")
	if code != 0 || !strings.Contains(errOut, "sent 5 lines") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if got := fmt.Sprint(sizes); got != "[5 2 3 1 2]" {
		t.Errorf("request sizes = %s, want [5 2 3 1 2] (split in halves)", got)
	}
}

func TestShipUsage(t *testing.T) {
	ct := newCLI(t, "http://127.0.0.1:1")
	if _, errOut, code := ct.run("ship", "--service", "s", "--env", "e"); code != exitcode.Usage || !strings.Contains(errOut, "LOGGATE_SOURCE_TOKEN") {
		t.Errorf("no token: exit %d %q", code, errOut)
	}
	ct.env["LOGGATE_SOURCE_TOKEN"] = "x"
	if _, errOut, code := ct.run("ship"); code != exitcode.Usage || !strings.Contains(errOut, "--service") {
		t.Errorf("no stream: exit %d %q", code, errOut)
	}
}

// TestFollowerRotationAndTruncation follows a file through a rename-and-
// recreate rotation and a copytruncate, without a gateway.
func TestFollowerRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	write := func(name, s string) {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	write(p, "a1\na2\npart")
	out := make(chan []byte, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fl := &follower{path: p, follow: true, poll: 10 * time.Millisecond, notef: func(string, ...any) {}}
	done := make(chan error, 1)
	go func() { done <- fl.run(ctx, out) }()
	next := func() string {
		t.Helper()
		select {
		case b := <-out:
			return string(b)
		case <-time.After(5 * time.Second):
			t.Fatal("no line")
			return ""
		}
	}
	var got []string
	got = append(got, next(), next())
	write(p, "ial\n")
	got = append(got, next())
	// Rotation: a line lands in the old file just before the rename.
	write(p, "a3\n")
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	write(p+".1", "a4-late\n")
	write(p, "b1\n")
	got = append(got, next(), next(), next())
	// copytruncate: the file shrinks and starts over.
	write(p, "b2\n")
	got = append(got, next())
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	write(p, "c1\n")
	got = append(got, next())
	want := []string{`{"message":"a1"}`, `{"message":"a2"}`, `{"message":"partial"}`, `{"message":"a3"}`,
		`{"message":"a4-late"}`, `{"message":"b1"}`, `{"message":"b2"}`, `{"message":"c1"}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	cancel()
	<-done
}

// TestShipStopsWithOpenStdin: Ctrl-C stops ship even while stdin stays
// open, after sending what it had read.
func TestShipStopsWithOpenStdin(t *testing.T) {
	f := &fakeIngest{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	ct := shipCLI(t, srv.URL)
	ct.modify = func(c *cli) { c.stdin = pr }
	var stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- ct.build(io.Discard, &stderr).run(ctx, []string{"ship", "--service", "s", "--env", "e", "--flush", "1h"})
	}()
	pw.Write([]byte("one\ntwo\n"))
	time.Sleep(300 * time.Millisecond) // let the reader hand the lines over
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ship: %v: %s", err, &stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ship did not stop on cancel")
	}
	if got := strings.Join(f.lines(), ","); got != `{"message":"one"},{"message":"two"}` {
		t.Errorf("shipped %s", got)
	}
}
