package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// startRsyslog runs a real rsyslogd (Debian's rsyslog) that takes RFC 5424
// over TCP on a free loopback port and writes "MSGID SD MSG" per line to a
// file. It returns the address and the file.
func startRsyslog(t *testing.T) (addr, out string) {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin = "/usr/sbin/rsyslogd"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("rsyslogd not installed (.ci/run installs Debian's rsyslog)")
			}
			t.Skip("rsyslogd not installed (apt-get install rsyslog)")
		}
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	out = filepath.Join(dir, "out.log")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="128k")
module(load="imtcp")
template(name="t" type="string" string="%%msgid%% %%structured-data%% %%msg%%\n")
ruleset(name="r") { action(type="omfile" file=%q template="t") }
input(type="imtcp" address="127.0.0.1" port=%q ruleset="r")
`, dir, out, port)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "-N1", "-f", cf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd rejects the test config: %v\n%s", err, b)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, out
		}
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd not listening on %s after 20s: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real rsyslog receives every event, each with its hash-chained line
// intact, and the pushed checkpoint as an audit.checkpoint message whose
// note verifies with the trail's key.
func TestSyslogSinkToRealRsyslog(t *testing.T) {
	addr, out := startRsyslog(t)
	s := openStore(t)
	evs := appendEvents(t, s, 8)
	sl, err := NewSyslog(SyslogConfig{Network: "tcp", Addr: addr, Hostname: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, s, sl, t.TempDir(), func(c *Config) {
		c.Checkpoint = s.LatestCheckpoint
		c.CheckpointEvery = time.Millisecond
	})
	waitLines := func(n int) []string {
		t.Helper()
		var ls []string
		waitFor(t, fmt.Sprintf("%d lines in rsyslog's file", n), func() bool {
			b, _ := os.ReadFile(out)
			ls = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			return len(b) > 0 && len(ls) >= n
		})
		return ls
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "the checkpoint pushed", func() bool { return r.CheckpointsPushed() == 1 })
	cancel()
	<-done
	ls := waitLines(9)
	byID := map[string]string{}
	var cpLine string
	for _, l := range ls {
		msgID, rest, _ := strings.Cut(l, " ")
		sd, msg, ok := cutSD(rest)
		if !ok {
			t.Fatalf("rsyslog line without structured data: %q", l)
		}
		msg = strings.TrimPrefix(msg, "\uFEFF")
		if msgID == CheckpointType {
			cpLine = msg
			if !strings.Contains(sd, `size="8"`) {
				t.Errorf("checkpoint SD %s, want size=\"8\"", sd)
			}
			continue
		}
		id, seq := checkLine(t, []byte(msg))
		if !strings.Contains(sd, fmt.Sprintf(`seq="%d"`, seq)) {
			t.Errorf("SD %s does not name seq %d", sd, seq)
		}
		byID[id] = msgID
	}
	for _, ev := range evs {
		if byID[ev.ID] != ev.Action {
			t.Errorf("event %d (%s) not received by rsyslog with its action as MSGID (got %q)", ev.Seq, ev.ID, byID[ev.ID])
		}
	}
	var cp struct {
		Type string `json:"type"`
		audit.Checkpoint
	}
	if err := json.Unmarshal([]byte(cpLine), &cp); err != nil || cp.Type != CheckpointType {
		t.Fatalf("checkpoint message %q: %v", cpLine, err)
	}
	if parsed, err := audit.ParseCheckpoint([]byte(cp.Note), s.VerifierKeys()...); err != nil || parsed.Size != 8 {
		t.Errorf("checkpoint through rsyslog: size %d, %v; want a verified size-8 note", parsed.Size, err)
	}
}

// cutSD splits "[sd ...] msg" at the end of the structured data.
func cutSD(s string) (sd, msg string, ok bool) {
	if !strings.HasPrefix(s, "[") {
		return "", "", false
	}
	esc := false
	for i := 1; i < len(s); i++ {
		switch {
		case esc:
			esc = false
		case s[i] == '\\':
			esc = true
		case s[i] == ']':
			return s[:i+1], strings.TrimPrefix(s[i+1:], " "), true
		}
	}
	return "", "", false
}
