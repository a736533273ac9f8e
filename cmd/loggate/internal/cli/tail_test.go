package cli

import (
	"strings"
	"testing"
)

// TestTailNotices: dropped, gap, notice and extension messages reach stderr
// in words; stdout stays clean.
func TestTailNotices(t *testing.T) {
	var out, errb syncBuffer
	c := &cli{getenv: func(string) string { return "" }, stdout: &out, stderr: &errb}
	tr := &tailRun{c: c, grantID: "grt_1", opts: tailOptions{output: "text"}, redacted: map[string]bool{}}
	defer tr.stopWarn()
	for _, m := range []string{
		`{"type":"dropped","count":7,"from_seq":10,"to_seq":16,"reason":"viewer queue full"}`,
		`{"type":"gap","from_seq":1,"to_seq":3,"reason":"evicted"}`,
		`{"type":"notice","code":"backfill","message":"backfill limited to the last 15m0s by policy"}`,
		`{"type":"notice","code":"extended","message":"grant extended","expires_at":"2099-01-01T00:00:00Z"}`,
		`{"type":"entries","entries":[{"seq":4,"time":"2025-01-01T00:00:00Z","level":"warn","message":"x","redactions":{"bearer":1}},{"seq":4,"time":"2025-01-01T00:00:00Z","level":"warn","message":"dup"}]}`,
		`not json`,
	} {
		if err := tr.handle([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	got := errb.String()
	for _, want := range []string{
		"loggate: 7 lines dropped (lines 10-16, viewer queue full): the tail could not keep up\n",
		"loggate: lines 1-3 are no longer kept by the server and were skipped, evicted\n",
		"loggate: backfill limited to the last 15m0s by policy\n",
		"loggate: grant extended; it now ends at ",
		"loggate: values were redacted at ingest (bearer)\n",
		"loggate: ignoring a message that is not JSON\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got)
		}
	}
	if o := out.String(); strings.Count(o, "\n") != 1 || !strings.Contains(o, "WARN  x") {
		t.Errorf("stdout = %q, want the one entry (the duplicate seq skipped)", o)
	}
}
