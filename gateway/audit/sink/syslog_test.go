package sink

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// syslogMsg is a parsed RFC 5424 message.
type syslogMsg struct {
	pri                                 int
	version                             string
	timestamp, host, app, procID, msgID string
	sdID                                string
	params                              map[string]string
	msg                                 []byte
}

// readFrame reads one octet-counted frame (RFC 6587 3.4.1: MSG-LEN SP MSG).
func readFrame(r *bufio.Reader) ([]byte, error) {
	var n int
	for digits := 0; ; digits++ {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == ' ' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || digits > 9 || (digits == 0 && c == '0') {
			return nil, fmt.Errorf("bad MSG-LEN byte %q", c)
		}
		n = n*10 + int(c-'0')
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// parse5424 parses the subset of RFC 5424 the sink writes: one SD element.
func parse5424(b []byte) (syslogMsg, error) {
	var m syslogMsg
	if len(b) < 4 || b[0] != '<' {
		return m, errors.New("no PRI")
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return m, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(string(b[1:end]))
	if err != nil || pri > 191 {
		return m, errors.New("bad PRI value")
	}
	m.pri = pri
	f := bytes.SplitN(b[end+1:], []byte(" "), 7)
	if len(f) != 7 {
		return m, errors.New("too few header fields")
	}
	m.version, m.timestamp, m.host, m.app, m.procID, m.msgID = string(f[0]), string(f[1]), string(f[2]), string(f[3]), string(f[4]), string(f[5])
	if m.version != "1" {
		return m, errors.New("version is not 1")
	}
	if _, err := time.Parse(time.RFC3339Nano, m.timestamp); err != nil {
		return m, fmt.Errorf("timestamp: %v", err)
	}
	for _, h := range []string{m.host, m.app, m.procID, m.msgID} {
		if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r < 33 || r > 126 }) {
			return m, fmt.Errorf("header field %q not PRINTUSASCII", h)
		}
	}
	rest := f[6]
	if len(rest) == 0 || rest[0] != '[' {
		return m, errors.New("no SD element")
	}
	sp := bytes.IndexByte(rest, ' ')
	if sp < 0 {
		return m, errors.New("SD-ID not terminated")
	}
	m.sdID, rest = string(rest[1:sp]), rest[sp:]
	m.params = map[string]string{}
	for len(rest) > 0 && rest[0] == ' ' {
		eq := bytes.Index(rest, []byte(`="`))
		if eq < 0 {
			return m, errors.New("SD-PARAM without value")
		}
		name := string(rest[1:eq])
		rest = rest[eq+2:]
		var val []byte
		for i := 0; ; i++ {
			if i >= len(rest) {
				return m, errors.New("SD-PARAM value not terminated")
			}
			c := rest[i]
			if c == '\\' && i+1 < len(rest) && bytes.IndexByte([]byte(`"\]`), rest[i+1]) >= 0 {
				val = append(val, rest[i+1])
				i++
				continue
			}
			if c == '"' {
				rest = rest[i+1:]
				break
			}
			if c == ']' {
				return m, errors.New("unescaped ] in SD-PARAM")
			}
			val = append(val, c)
		}
		m.params[name] = string(val)
	}
	if !bytes.HasPrefix(rest, []byte("] \xEF\xBB\xBF")) {
		return m, errors.New("SD element not closed by '] BOM'")
	}
	m.msg = rest[5:]
	return m, nil
}

// syslogServer accepts connections and parses every frame it receives.
type syslogServer struct {
	ln        net.Listener
	mu        sync.Mutex
	msgs      []syslogMsg
	errs      []error
	conns     int
	closeAt   int           // close the first connection after this many frames (0: never)
	closedOne chan struct{} // closed when it did
}

func startSyslog(t *testing.T, ln net.Listener, closeAt int) *syslogServer {
	s := &syslogServer{ln: ln, closeAt: closeAt, closedOne: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			first := s.conns == 1
			s.mu.Unlock()
			go s.serve(c, first)
		}
	}()
	return s
}

func (s *syslogServer) serve(c net.Conn, first bool) {
	defer c.Close()
	r := bufio.NewReader(c)
	for n := 1; ; n++ {
		b, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
			}
			return
		}
		m, err := parse5424(b)
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("frame %q: %w", b, err))
		} else {
			s.msgs = append(s.msgs, m)
		}
		s.mu.Unlock()
		if first && n == s.closeAt {
			c.Close()
			close(s.closedOne)
			return
		}
	}
}

func (s *syslogServer) check(t *testing.T, evs []audit.Event) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		t.Errorf("receiver: %v", err)
	}
	byID := map[string]syslogMsg{}
	for _, m := range s.msgs {
		id, seq := checkLine(t, m.msg)
		if m.params["id"] != id || m.params["seq"] != strconv.FormatInt(seq, 10) {
			t.Errorf("SD params %v do not match the line's id %s seq %d", m.params, id, seq)
		}
		byID[id] = m
	}
	for _, ev := range evs {
		m, ok := byID[ev.ID]
		if !ok {
			t.Errorf("event seq %d not received", ev.Seq)
			continue
		}
		sev := map[string]int{audit.OutcomeSuccess: 5, audit.OutcomeDenied: 4, audit.OutcomeError: 3}[ev.Outcome]
		if m.pri != 13*8+sev || m.msgID != ev.Action || m.host != "gw-1" || m.app != "loggate" ||
			m.sdID != "loggate@32473" || m.params["outcome"] != ev.Outcome {
			t.Errorf("seq %d: pri %d msgid %q host %q app %q sd %q %v; want pri %d, %s", ev.Seq, m.pri, m.msgID,
				m.host, m.app, m.sdID, m.params, 13*8+sev, ev.Action)
		}
		if ts, _ := time.Parse(time.RFC3339Nano, m.timestamp); !ts.Equal(ev.Time.Truncate(time.Microsecond)) {
			t.Errorf("seq %d: timestamp %s, want %s", ev.Seq, m.timestamp, ev.Time)
		}
	}
}

func TestSyslogTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := startSyslog(t, ln, 0)
	s := openStore(t)
	evs := appendEvents(t, s, 6)
	newSink := func() *Syslog {
		sk, err := NewSyslog(SyslogConfig{Network: "tcp", Addr: ln.Addr().String(), Hostname: "gw-1"})
		if err != nil {
			t.Fatal(err)
		}
		return sk
	}
	dir := t.TempDir()
	runUntil(t, newRunner(t, s, newSink(), dir, nil), 6)
	evs = append(evs, appendEvents(t, s, 6)...)
	runUntil(t, newRunner(t, s, newSink(), dir, nil), 12) // a restart resumes at the cursor
	waitMsgs(t, srv, 12)
	srv.check(t, evs)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.msgs) != 12 {
		t.Errorf("receiver got %d messages, want 12 (no repeats after a clean restart)", len(srv.msgs))
	}
}

func TestSyslogRedialsAfterReceiverDropsConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := startSyslog(t, ln, 2)
	s := openStore(t)
	evs := appendEvents(t, s, 2)
	sk, err := NewSyslog(SyslogConfig{Network: "tcp", Addr: ln.Addr().String(), Hostname: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	recs, _ := s.After(t.Context(), 0, 10)
	if err := sk.Deliver(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	<-srv.closedOne
	time.Sleep(20 * time.Millisecond) // let the FIN arrive
	evs = append(evs, appendEvents(t, s, 3)...)
	recs, _ = s.After(t.Context(), 2, 10)
	if err := sk.Deliver(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, srv, 5)
	srv.check(t, evs)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.conns != 2 {
		t.Errorf("receiver saw %d connections, want 2 (a redial)", srv.conns)
	}
}

func TestSyslogTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := startSyslog(t, ln, 0)
	s := openStore(t)
	evs := appendEvents(t, s, 9)
	sk, err := NewSyslog(SyslogConfig{Network: "tls", Addr: ln.Addr().String(), Hostname: "gw-1",
		TLS: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, newRunner(t, s, sk, t.TempDir(), nil), 9)
	waitMsgs(t, srv, 9)
	srv.check(t, evs)

	// A client that does not trust the certificate delivers nothing.
	bad, _ := NewSyslog(SyslogConfig{Network: "tls", Addr: ln.Addr().String(), Timeout: 2 * time.Second,
		TLS: &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	recs, _ := s.After(t.Context(), 0, 1)
	if err := bad.Deliver(t.Context(), recs); err == nil {
		t.Error("Deliver to an untrusted certificate succeeded")
	}
}

func waitMsgs(t *testing.T, srv *syslogServer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv.mu.Lock()
		got := len(srv.msgs)
		srv.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d messages, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Frames the sink writes parse back whatever the event's fields hold.
func FuzzSyslogFrame(f *testing.F) {
	f.Add("auth.login", "evt_abc", "success", "gw-1", `{"seq":1,"x":"y"}`)
	f.Add("a b\x00c]", `evt_"]\`, "denied", "", `{}`)
	f.Add(strings.Repeat("x", 40), "id", "weird outcome", "host name", `{"seq":2}`)
	f.Fuzz(func(t *testing.T, action, id, outcome, host, rec string) {
		if len(rec) < 2 || rec[len(rec)-1] != '}' {
			return
		}
		r := audit.Record{Seq: 7, ID: id, Action: action, Time: time.Unix(1700000000, 123456789),
			Bytes: []byte(rec), Hash: strings.Repeat("ab", 32)}
		var buf bytes.Buffer
		appendFrame(&buf, 13, host, "loggate", r, outcome)
		frame, err := readFrame(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("readFrame: %v", err)
		}
		if buf.Len() != 0 {
			t.Fatalf("%d bytes after the frame", buf.Len())
		}
		m, err := parse5424(frame)
		if err != nil {
			t.Fatalf("parse %q: %v", frame, err)
		}
		line := r.Line()
		if m.params["id"] != id || m.params["outcome"] != outcome || !bytes.Equal(m.msg, line[:len(line)-1]) {
			t.Fatalf("round trip: params %v msg %q", m.params, m.msg)
		}
	})
}
