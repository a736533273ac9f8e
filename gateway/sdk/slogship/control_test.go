package slogship

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// controlServer speaks the control channel's server side over a real
// WebSocket: each connection gets the frames sent on its channel and the
// acks it reads are passed back.
type controlServer struct {
	*httptest.Server
	conns chan chan string // one frame channel per accepted connection
	acks  chan string
}

func newControlServer(t *testing.T) *controlServer {
	cs := &controlServer{conns: make(chan chan string, 4), acks: make(chan string, 16)}
	up := websocket.Upgrader{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/ingest" {
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("service") != "checkout" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		frames := make(chan string)
		cs.conns <- frames
		go func() {
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				cs.acks <- strings.TrimSpace(string(data))
			}
		}()
		for f := range frames {
			if f == "" { // drop the connection
				return
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(cs.Close)
	return cs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestControlChannel: good frames raise and lower the level and are
// acknowledged; bad frames and rules are ignored, counted and logged; a
// lost connection lowers the level until the state is sent again.
func TestControlChannel(t *testing.T) {
	cs := newControlServer(t)
	var libLog lockedBuffer
	s, err := New(Config{URL: cs.URL, Token: "tok", Service: "checkout", Env: "staging",
		Logger: slog.New(slog.NewTextHandler(&libLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	log := slog.New(s.Handler(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	debugOn := func() bool { return log.Enabled(context.Background(), slog.LevelDebug) }

	frames := <-cs.conns
	frames <- `{"type":"levels","version":1,"levels":[{"service":"checkout","env":"staging","level":"debug"}]}`
	if ack := <-cs.acks; ack != `{"type":"ack","version":1}` {
		t.Errorf("ack %s", ack)
	}
	if !debugOn() {
		t.Fatal("debug not enabled after a levels frame")
	}
	for _, bad := range []string{
		`{"type":"levels",`,
		`{"type":"nonsense"}`,
		`{"type":"levels","version":2,"levels":[{"service":"payments","env":"staging","level":"debug"},{"service":"checkout","env":"staging","level":"chatty"}]}`,
	} {
		frames <- bad
	}
	// The last frame was valid but every rule in it was ignored: normal level.
	if ack := <-cs.acks; ack != `{"type":"ack","version":2}` {
		t.Errorf("ack %s", ack)
	}
	if debugOn() {
		t.Error("debug still enabled by a frame of ignored rules")
	}
	st := s.Stats()
	for reason, want := range map[string]int64{ReasonMalformed: 1, ReasonUnknownType: 1, ReasonOtherService: 1, ReasonUnknownLevel: 1} {
		if st.Ignored[reason] != want {
			t.Errorf("ignored[%s] = %d, want %d (%v)", reason, st.Ignored[reason], want, st.Ignored)
		}
	}
	frames <- `{"type":"levels","version":3,"levels":[{"service":"checkout","env":"staging","level":"debug"}]}`
	<-cs.acks
	if !debugOn() {
		t.Fatal("debug not enabled again")
	}
	frames <- "" // the gateway goes away
	waitFor(t, "normal level after the connection dropped", func() bool { return !debugOn() })
	frames = <-cs.conns // the library reconnects; the new state is empty
	frames <- `{"type":"levels","version":1,"levels":[]}`
	<-cs.acks
	if debugOn() || s.Stats().Connects != 2 {
		t.Errorf("after reconnect: debug %v, stats %+v", debugOn(), s.Stats())
	}
	close(frames)
	if !strings.Contains(libLog.String(), "ignoring") {
		t.Errorf("library log %q: want the ignored frames logged", libLog.String())
	}
}

// lockedBuffer is a bytes.Buffer the library's goroutines may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
