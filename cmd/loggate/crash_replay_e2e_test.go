package main

import (
	"fmt"
	"testing"
	"time"
)

// kill -9 mid-view, after a filter change and a pause: the view replays from the
// record saved with its counts, verified up to that save, and what it
// rebuilds is what the viewer received, in order, up to the counted entries.
func TestCrashedViewReplaysUpToItsLastSave(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	v := startCrashView(t, "INC-18 crash replay")
	g, conn := v.g, v.tc.conn
	var received []string
	keep := func(es []map[string]any) {
		for _, e := range es {
			received = append(received, fmt.Sprint(e["message"]))
		}
	}
	lines := make([]string, 20)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"message":"before %d","level":%q}`, i, []string{"info", "warn"}[i%2])
	}
	if code := g.ingest("checkout", "staging", "lgs_crash_test_token", lines...); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	keep(readEntries(t, conn, len(lines)))

	// A filter change: a new epoch and range in the record.
	send := func(msg map[string]string, notice string) {
		t.Helper()
		if err := conn.WriteJSON(msg); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var m struct {
				Type, Code string
			}
			if err := conn.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for the %s notice: %v", notice, err)
			}
			if m.Type == "notice" && m.Code == notice {
				return
			}
		}
	}
	send(map[string]string{"type": "filter", "level": "warn"}, "filter")
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"message":"after %d","level":%q}`, i, []string{"info", "warn"}[i%2])
	}
	if code := g.ingest("checkout", "staging", "lgs_crash_test_token", lines...); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	keep(readEntries(t, conn, len(lines)/2))

	// A pause across saves: a skip in the record, then a new range.
	send(map[string]string{"type": "pause"}, "paused")
	if code := g.ingest("checkout", "staging", "lgs_crash_test_token", `{"message":"while paused","level":"error"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	v.awaitSaves("a save while paused", 1, nil)
	send(map[string]string{"type": "resume"}, "resumed")

	n := 0
	v.awaitSaves("two more saves of the view's counts", 2, func() {
		n++
		if g.ingest("checkout", "staging", "lgs_crash_test_token", fmt.Sprintf(`{"message":"more %d","level":"error"}`, n)) == 200 {
			keep(readEntries(t, conn, 1))
		}
	})
	carol, closed := v.crash()
	if len(closed) != 1 || closed[0].Outcome != "interrupted" || closed[0].Details["replay"] == nil {
		t.Fatalf("stream.closed after the crash = %+v, want one, interrupted, with a replay record", closed)
	}
	counted, _ := closed[0].Details["entries"].(float64)

	out := g.replayView(v.viewID, carol, "INC-18%20crash%20review")
	if out.status != 200 || out.result["verified"] != true {
		t.Fatalf("replay of the crashed view: status %d, result %v", out.status, out.result)
	}
	if len(out.messages) != int(counted) || len(out.messages) < 30 || len(out.messages) > len(received) {
		t.Errorf("replay rebuilt %d entries; the view counted %v and received %d (at least 30 before the saves)",
			len(out.messages), counted, len(received))
	}
	if skips, _ := out.result["skips"].([]any); len(skips) != 1 || skips[0].(map[string]any)["reason"] != "paused" {
		t.Errorf("replay skips = %v, want the one pause", out.result["skips"])
	}
	for i, m := range out.messages {
		if i >= len(received) || m != received[i] {
			t.Fatalf("replay entry %d = %q; the viewer received %q there: not a prefix", i, m, received[min(i, len(received)-1)])
		}
	}
}
