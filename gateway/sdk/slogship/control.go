package slogship

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// controlLoop holds the control connection until Close, reconnecting with
// backoff. While it is down no level is raised.
func (s *Shipper) controlLoop() {
	defer s.done.Done()
	backoff := 100 * time.Millisecond
	for {
		connected, err := s.controlOnce()
		s.connected.Store(false)
		s.rules.Store(nil)
		select {
		case <-s.stop:
			return
		default:
		}
		if connected {
			backoff = 100 * time.Millisecond
		}
		if err != nil {
			s.log.Warn("loggate control connection lost; normal level until it is back", "err", err, "retry_in", backoff)
		}
		// Jitter spreads the reconnects of many instances after a restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// errUnauthorized ends reconnecting quickly: the token is wrong.
var errUnauthorized = errors.New("loggate refused the source token")

// controlOnce runs one control connection; connected says whether it got
// as far as a WebSocket.
func (s *Shipper) controlOnce() (connected bool, err error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	hdr := http.Header{"Authorization": {"Bearer " + s.cfg.Token}}
	conn, resp, err := d.Dial(s.control, hdr)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return false, errUnauthorized
		}
		return false, err
	}
	defer conn.Close()
	s.connects.Add(1)
	s.connected.Store(true)
	conn.SetReadLimit(maxFrameBytes)
	// The gateway pings every 30s; a silent connection is a dead one.
	_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-s.stop:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			conn.Close()
		case <-stopped:
		}
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return true, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		f, err := DecodeFrame(data, s.cfg.Service, s.cfg.Env)
		if err != nil {
			var ie *IgnoredError
			if errors.As(err, &ie) {
				s.countIgnored(ie.Reason, 1)
			}
			s.log.Warn("ignoring a control frame", "err", err)
			continue
		}
		if f.Type == "end" {
			continue // the close frame follows
		}
		for reason, n := range f.Ignored {
			s.countIgnored(reason, n)
			s.log.Warn("ignoring control rules", "reason", reason, "rules", n)
		}
		s.rules.Store(newRuleSet(f.Rules))
		s.frames.Add(1)
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := conn.WriteJSON(map[string]any{"type": "ack", "version": f.Version}); err != nil {
			return true, err
		}
	}
}
