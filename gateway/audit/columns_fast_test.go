package audit

import (
	"fmt"
	"testing"
	"time"
)

// The fast column reader must agree with encoding/json wherever it answers,
// and must decline (so encoding/json decides) for anything not canonical.
func TestFastColumnsAgreesWithJSON(t *testing.T) {
	ev := testEvent(3)
	ev.ID = NewEventID()
	ev.Schema = SchemaVersion
	ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	ev.Actor.Groups = []string{"a", "b\"c"}
	ev.Details = map[string]any{"n": 1, "s": "x\\y", "o": map[string]any{"k": []any{1, "}"}}}
	tail, err := EncodeTail(&ev)
	if err != nil {
		t.Fatal(err)
	}
	rec := BuildRecord(7, [32]byte{1}, tail)
	got, ok := fastColumns(rec)
	if !ok {
		t.Fatalf("fastColumns declined a canonical record: %s", rec)
	}
	want, err := recordColumns(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("fastColumns = %+v, json = %+v", got, want)
	}
	for name, r := range map[string]string{
		"duplicate key":      `{"seq":1,"id":"a","action":"x","action":"y","outcome":"success"}`,
		"other case":         `{"seq":1,"id":"a","Action":"x","outcome":"success"}`,
		"out of order":       `{"seq":1,"action":"x","id":"a","outcome":"success"}`,
		"escaped string":     `{"seq":1,"id":"a","action":"x\u0041","outcome":"success"}`,
		"invalid details":    `{"seq":1,"id":"a","details":{"a":}}`,
		"trailing bytes":     `{"seq":1,"id":"a"} `,
		"unknown member":     `{"seq":1,"id":"a","extra":"x"}`,
		"string seq":         `{"seq":"1","id":"a"}`,
		"actor out of order": `{"seq":1,"id":"a","actor":{"email":"e","subject":"s"}}`,
	} {
		if c, ok := fastColumns([]byte(r)); ok {
			t.Errorf("%s: fastColumns accepted %s as %+v, want it to decline", name, r, c)
		}
	}
}

func FuzzFastColumns(f *testing.F) {
	f.Add([]byte(`{"seq":1,"prev_hash":"00","id":"a","time":"2026-01-02T03:04:05Z","action":"x","actor":{"kind":"user","email":"e"},"outcome":"success","details":{"a":[1]}}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		got, ok := fastColumns(rec)
		if !ok {
			return
		}
		want, err := recordColumns(rec)
		if err != nil {
			t.Fatalf("fastColumns accepted %q, encoding/json rejects it: %v", rec, err)
		}
		if got != want {
			t.Fatalf("fastColumns(%q) = %+v, json = %+v", rec, got, want)
		}
		// A hint changes nothing but where the strings live.
		other := Columns{ID: "x", Action: "x", Outcome: "x", ActorSubject: "x", ActorEmail: "x", RequestID: "x",
			TargetRequestID: "x", GrantID: "x", Service: "x", Env: "x"}
		for _, like := range []*Columns{&want, &other, {}} {
			if c, ok := fastColumnsLike(rec, like); !ok || c != want {
				t.Fatalf("fastColumnsLike(%q, %+v) = %+v, %v; want %+v", rec, like, c, ok, want)
			}
		}
	})
}

// TestUnpackColumns: column values that look like the packing itself
// (digits, colons, empty strings, bytes of any kind) come back as they went
// in, and a malformed packing is an error, never a shifted column.
func TestUnpackColumns(t *testing.T) {
	want := Columns{ID: "3:abc", Action: "", Outcome: "1:", ActorSubject: ":", ActorEmail: "a\x00b",
		RequestID: "12", TargetRequestID: "", GrantID: "g", Service: "日本", Env: "0:"}
	vals := []string{want.ID, want.Action, want.Outcome, want.ActorSubject, want.ActorEmail,
		want.RequestID, want.TargetRequestID, want.GrantID, want.Service, want.Env}
	var packed string
	for _, v := range vals {
		packed += fmt.Sprintf("%d:%s", len(v), v)
	}
	var got Columns
	if err := unpackColumns(packed, &got); err != nil || got != want {
		t.Fatalf("unpack: %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", packed[:len(packed)-1], packed + "x", "99:" + packed, "x" + packed} {
		var c Columns
		if err := unpackColumns(bad, &c); err == nil {
			t.Errorf("unpack(%q) = %+v, want an error", bad, c)
		}
	}
}
