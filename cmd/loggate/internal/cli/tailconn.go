package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/api/client"
)

// dial opens the WebSocket. Refusals before the upgrade map to exit codes:
// an ended grant is 4 (0 when a running tail finds it expired), other 403s 3.
func (t *tailRun) dial(ctx context.Context, a *apiClient, resume bool) (*websocket.Conn, error) {
	u := wsURL(a.base) + api.TailPath(pathEscape(t.grantID)) + "?" + t.query(resume).Encode()
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second, Proxy: http.ProxyFromEnvironment}
	h := http.Header{"Authorization": {"Bearer " + a.token}, "User-Agent": {"loggate-cli/" + a.c.version}}
	conn, resp, err := d.DialContext(ctx, u, h)
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil {
		return nil, &exitcode.Error{Code: exitcode.Aborted}
	}
	if resp == nil {
		return nil, &retryableError{fmt.Errorf("cannot reach %s (%v)", a.base, unwrapURLError(err))}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	ae := client.DecodeError(resp.StatusCode, body)
	switch {
	case ae.Code == "grant_expired" && resume:
		t.notef("the grant expired while reconnecting; tail ended")
		return nil, nil
	case ae.Code == "grant_expired":
		return nil, &exitcode.Error{Code: exitcode.Ended, Err: fmt.Errorf("grant %s has expired: ask again with `loggate request`", t.grantID)}
	case ae.Code == "grant_revoked":
		return nil, &exitcode.Error{Code: exitcode.Ended, Err: fmt.Errorf("grant %s was revoked", t.grantID)}
	case ae.Status == http.StatusUnauthorized && !t.renewed && a.renewToken(ctx):
		t.renewed = true
		return nil, &retryableError{errors.New("the sign-in expired and was renewed")}
	case ae.Status == http.StatusTooManyRequests || ae.Status >= 500:
		return nil, &retryableError{fmt.Errorf("the server answered %d (%s)", ae.Status, ae.Message)}
	}
	return nil, a.statusError(ae)
}

// serve reads one connection until it ends. nil means the tail is over
// (expiry); a *retryableError asks for a reconnect.
func (t *tailRun) serve(ctx context.Context, conn *websocket.Conn) error {
	if conn == nil { // dial found the grant expired on resume
		return nil
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	})
	defer stop()
	// The server pings every 30s; silence for much longer is a dead link.
	const idle = 75 * time.Second
	_ = conn.SetReadDeadline(time.Now().Add(idle))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	conn.SetReadLimit(16 << 20)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return t.ended(ctx, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		if err := t.handle(data); err != nil {
			return err
		}
	}
}

// ended maps how a connection ended to the tail's outcome.
func (t *tailRun) ended(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &exitcode.Error{Code: exitcode.Aborted}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return &retryableError{fmt.Errorf("connection lost (%v)", err)}
	}
	if ce.Code == websocket.CloseAbnormalClosure {
		return &retryableError{fmt.Errorf("connection lost (%s)", orDash(ce.Text))}
	}
	msg := t.endMsg
	if msg == "" {
		msg = ce.Text
	}
	t.endMsg = ""
	switch ce.Code {
	case api.CloseExpired:
		t.notef("%s; tail ended", msg)
		return nil
	case api.CloseRevoked:
		return &exitcode.Error{Code: exitcode.Ended, Err: fmt.Errorf("grant %s ended: %s", t.grantID, msg)}
	case api.CloseLimit:
		return fmt.Errorf("%s: close another tail first", msg)
	case api.CloseShutdown, api.CloseSlow, api.CloseUnavailable:
		return &retryableError{errors.New(msg)}
	default:
		return &retryableError{fmt.Errorf("connection closed (%d %s)", ce.Code, ce.Text)}
	}
}

// handle processes one server message.
func (t *tailRun) handle(data []byte) error {
	var m api.TailFrame
	if err := json.Unmarshal(data, &m); err != nil {
		t.notef("ignoring a message that is not JSON")
		return nil
	}
	switch m.Type {
	case api.FrameSubscribed:
		if !m.ExpiresAt.IsZero() {
			t.setExpiry(m.ExpiresAt)
		}
		if t.subscribed {
			t.notef("reconnected to %s/%s", m.Service, m.Env)
		} else {
			t.notef("following %s/%s with grant %s until %s (Ctrl-C to stop)", m.Service, m.Env, m.GrantID, fmtClock(m.ExpiresAt))
		}
		t.subscribed = true
	case api.FrameEntries:
		return t.printEntries(m.Entries)
	case api.FrameDropped:
		t.notef("%d lines dropped (lines %d-%d%s): the tail could not keep up", m.Count, m.FromSeq, m.ToSeq, withReason(m.Reason))
	case api.FrameGap:
		t.notef("lines %d-%d are no longer kept by the server and were skipped%s", m.FromSeq, m.ToSeq, withReason(m.Reason))
	case api.FrameNotice:
		if m.Code == "extended" && !m.ExpiresAt.IsZero() {
			t.setExpiry(m.ExpiresAt)
			t.notef("grant extended; it now ends at %s", fmtClock(m.ExpiresAt))
			return nil
		}
		t.notef("%s", oneLine(m.Message, 300))
	case api.FrameEnd:
		t.endMsg = oneLine(m.Message, 300)
	}
	return nil
}

func withReason(r string) string {
	if r == "" {
		return ""
	}
	return ", " + oneLine(r, 100)
}

func (t *tailRun) printEntries(raws []json.RawMessage) error {
	w := t.c.stdout
	for _, raw := range raws {
		var e api.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			continue
		}
		if e.Seq > 0 && e.Seq <= t.lastSeq {
			continue // already printed before a reconnect
		}
		if e.Seq > 0 {
			t.lastSeq = e.Seq
		}
		var newRules []string
		for rule := range e.Redactions {
			if !t.redacted[rule] {
				t.redacted[rule] = true
				newRules = append(newRules, rule)
			}
		}
		if len(newRules) > 0 {
			sort.Strings(newRules)
			t.notef("values were redacted at ingest (%s)", strings.Join(newRules, ", "))
		}
		var err error
		if t.opts.output == "json" {
			err = writeCompactJSON(w, escapeC1(raw))
		} else {
			_, err = io.WriteString(w, formatEntry(e, t.color))
		}
		if err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// setExpiry arms a warning one minute before the grant ends.
func (t *tailRun) setExpiry(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expires = at
	if t.warnTimer != nil {
		t.warnTimer.Stop()
	}
	left := at.Sub(t.c.clock())
	if left <= time.Minute {
		return
	}
	id := t.grantID
	t.warnTimer = time.AfterFunc(left-time.Minute, func() {
		t.notef("grant %s ends in 1 minute (at %s); for more time: loggate extend %s --for 15m --reason \"...\"", id, fmtClock(at), id)
	})
}

func (t *tailRun) stopWarn() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.warnTimer != nil {
		t.warnTimer.Stop()
	}
}

// wsURL is the WebSocket URL for an http(s) server URL.
func wsURL(u string) string {
	if len(u) > 5 && u[:5] == "https" {
		return "wss" + u[5:]
	}
	return "ws" + u[4:]
}
