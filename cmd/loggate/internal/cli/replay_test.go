package cli

import (
	"strings"
	"testing"
)

// TestReplaySummaryIsInertOnATerminal: the replay's summary (the viewer's
// name from the identity provider, the reasons and details from the
// server) is printed with control characters made inert, like log lines.
func TestReplaySummaryIsInertOnATerminal(t *testing.T) {
	var out, errb syncBuffer
	c := &cli{getenv: func(string) string { return "" }, stdout: &out, stderr: &errb}
	raw := `{"type":"replay","view_id":"view_a","viewer":"eve\u001b]0;pwned\u0007","verified":false,` +
		`"reason":"x\u001b[2J","missing":[{"from":1,"to":2,"reason":"unreadable","detail":"d\u001b[1A"}]}` + "\n"
	_ = writeReplay(c, []byte(raw), "text")
	if got := errb.String(); strings.ContainsRune(got, '\x1b') || strings.ContainsRune(got, '\a') {
		t.Errorf("stderr carries terminal control characters: %q", got)
	}
}
