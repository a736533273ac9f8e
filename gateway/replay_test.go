package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

// viewerSide is what a tail client computes from the frames it gets.
type viewerSide struct {
	t       *testing.T
	conn    *websocket.Conn
	viewID  string
	seqs    []int64
	sums    []byte
	notices []string
}

func (h *harness) openView(user, grantID, query string) *viewerSide {
	h.t.Helper()
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/v1/grants/" + grantID + "/tail?" + query
	conn, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + h.token(user)}})
	if err != nil {
		h.t.Fatal(err)
	}
	var sub struct {
		Type   string `json:"type"`
		ViewID string `json:"view_id"`
	}
	if err := conn.ReadJSON(&sub); err != nil || sub.Type != "subscribed" || sub.ViewID == "" {
		h.t.Fatalf("first frame %+v (%v): want subscribed with a view_id", sub, err)
	}
	return &viewerSide{t: h.t.(*testing.T), conn: conn, viewID: sub.ViewID}
}

// readUntil reads frames until the viewer has n entries and, if code is
// set, a notice with that code.
func (v *viewerSide) readUntil(n int, code string) {
	v.t.Helper()
	_ = v.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(v.seqs) < n || (code != "" && !slices.Contains(v.notices, code)) {
		_, data, err := v.conn.ReadMessage()
		if err != nil {
			v.t.Fatalf("reading the tail (have %d entries, want %d, notice %q): %v", len(v.seqs), n, code, err)
		}
		var f struct {
			Type    string            `json:"type"`
			Code    string            `json:"code"`
			Entries []json.RawMessage `json:"entries"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			v.t.Fatal(err)
		}
		if f.Type == "notice" {
			v.notices = append(v.notices, f.Code)
		}
		for _, raw := range f.Entries {
			sum := sha256.Sum256(raw)
			v.sums = append(v.sums, sum[:]...)
			var e logs.Entry
			_ = json.Unmarshal(raw, &e)
			v.seqs = append(v.seqs, e.Seq)
		}
	}
}

func (v *viewerSide) digest() string {
	s := sha256.Sum256(v.sums)
	return hex.EncodeToString(s[:])
}

func (v *viewerSide) send(msg map[string]any) {
	v.t.Helper()
	if err := v.conn.WriteJSON(msg); err != nil {
		v.t.Fatal(err)
	}
}

func (h *harness) publishStaging(levels ...string) {
	h.t.Helper()
	es := make([]logs.Entry, len(levels))
	for i, l := range levels {
		es[i] = logs.Entry{Time: time.Now(), Service: "checkout", Env: "staging", Level: l,
			Message: "line " + l, Attrs: map[string]string{"tenant": []string{"acme", "globex"}[i%2]}}
	}
	if _, err := h.hub.Publish(context.Background(), es); err != nil {
		h.t.Fatal(err)
	}
}

// replay calls the replay endpoint and returns the status, the entries
// frames' seqs and the final result line.
func (h *harness) replay(user, viewID, reason string) (int, []int64, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+"/api/v1/views/"+viewID+"/replay?reason="+reason, nil)
	req.Header.Set("Authorization", "Bearer "+h.token(user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var seqs []int64
	var last map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var line struct {
			Type    string       `json:"type"`
			Entries []logs.Entry `json:"entries"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			h.t.Fatalf("replay line %q: %v", sc.Bytes(), err)
		}
		for _, e := range line.Entries {
			seqs = append(seqs, e.Seq)
		}
		_ = json.Unmarshal(sc.Bytes(), &last)
	}
	return resp.StatusCode, seqs, last
}

// waitClosed waits until the trail holds the view's stream.closed.
func (h *harness) waitClosed(viewID string) audit.Event {
	h.t.Helper()
	var closed audit.Event
	if _, ok := h.eventsWithin(audit.Query{Action: "stream.closed"}, 10*time.Second, 10*time.Millisecond, func(evs []audit.Event) bool {
		for _, ev := range evs {
			if ev.Details["view_id"] == viewID {
				closed = ev
				return true
			}
		}
		return false
	}); !ok {
		h.t.Fatalf("no stream.closed for %s", viewID)
	}
	return closed
}

// TestReplayShowsWhatTheViewerSaw: a view with a backfill, an attribute
// filter, a filter change and a pause is rebuilt by the replay endpoint
// entry for entry, with the digest the viewer itself computes; the replay
// is for security and admins only, needs a reason, and is audited.
func TestReplayShowsWhatTheViewerSaw(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "30m")
	h.publishStaging("info", "info", "debug", "warn", "info", "error") // 1..6; acme: 1, 3, 5

	v := h.openView("alice", g.ID, "lines=2&attr.tenant=acme")
	v.readUntil(2, "")                                // backfill: 3, 5
	h.publishStaging("info", "debug", "warn", "info") // 7..10; acme: 7, 9
	v.readUntil(4, "")
	v.send(map[string]any{"type": "filter", "level": "warn"})
	v.readUntil(4, "filter")
	h.publishStaging("info", "warn", "error", "debug") // 11..14; warn+: 12, 13
	v.readUntil(6, "")
	v.send(map[string]any{"type": "pause"})
	v.readUntil(6, "paused")
	h.publishStaging("warn", "error") // 15, 16: skipped while paused
	v.send(map[string]any{"type": "resume"})
	v.readUntil(6, "resumed")
	h.publishStaging("fatal") // 17
	v.readUntil(7, "")
	if want := []int64{3, 5, 7, 9, 12, 13, 17}; !slices.Equal(v.seqs, want) {
		t.Fatalf("the viewer saw %v, want %v", v.seqs, want)
	}

	// Still open: 409.
	if code, _, _ := h.replay("carol", v.viewID, "INC-9"); code != http.StatusConflict {
		t.Errorf("replay of an open view: %d, want 409", code)
	}
	v.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	v.conn.Close()
	closed := h.waitClosed(v.viewID)
	if closed.Details["entries_sha256"] != v.digest() {
		t.Fatalf("stream.closed entries_sha256 %v, the viewer computed %s", closed.Details["entries_sha256"], v.digest())
	}

	code, seqs, res := h.replay("carol", v.viewID, "INC-9%20what%20did%20alice%20see")
	if code != http.StatusOK {
		t.Fatalf("replay: status %d (%v)", code, res)
	}
	if !slices.Equal(seqs, v.seqs) {
		t.Errorf("replay rebuilt %v, the viewer saw %v", seqs, v.seqs)
	}
	if res["type"] != "replay" || res["verified"] != true || res["entries_sha256"] != v.digest() {
		t.Errorf("replay result %v: want verified with the viewer's digest %s", res, v.digest())
	}
	replayed := h.events(audit.Query{Action: "view.replayed", Actor: "carol@example.com"})
	if len(replayed) != 1 || replayed[0].Outcome != "success" || replayed[0].Reason != "INC-9 what did alice see" ||
		replayed[0].Details["view_id"] != v.viewID || replayed[0].Target.GrantID != g.ID {
		t.Errorf("view.replayed events %+v", replayed)
	}

	// Not security: 403, audited. No reason: 400. Unknown view: 404.
	if code, seqs, _ := h.replay("alice", v.viewID, "curious"); code != http.StatusForbidden || len(seqs) != 0 {
		t.Errorf("replay by alice: %d with %d entries, want 403 and none", code, len(seqs))
	}
	if denied := h.events(audit.Query{Action: "view.replayed", Actor: "alice@example.com", Outcome: "denied"}); len(denied) != 1 {
		t.Errorf("alice's refused replay audited %d times, want 1", len(denied))
	}
	if code, _, _ := h.replay("carol", v.viewID, ""); code != http.StatusBadRequest {
		t.Errorf("replay without a reason: %d, want 400", code)
	}
	for _, id := range []string{"view_doesnotexist", "not-a-view", "view_" + strings.Repeat("x", 200)} {
		if code, _, _ := h.replay("carol", id, "INC-9"); code != http.StatusNotFound {
			t.Errorf("replay of %q: %d, want 404", id, code)
		}
	}
}
