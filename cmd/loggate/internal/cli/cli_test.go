package cli

import (
	"encoding/json"
	"flag"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	ct := newCLI(t, "")
	var names []string
	for name := range commands() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			args := append(strings.Fields(name), "--help")
			out, errOut, code := ct.run(args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, want := range []string{"Usage: loggate " + name, "Examples:\n  "} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	ct := newCLI(t, "http://127.0.0.1:1")
	ct.env["LOGGATE_TOKEN"] = "x"
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"tail", "--nope", "a/b"}, "flag provided but not defined: -nope"},
		{"request without reason", []string{"request", "checkout/prod", "--for", "30m"}, "--reason is required"},
		{"request bad stream", []string{"request", "checkout", "--reason", "x"}, "must be SERVICE/ENV"},
		{"request bad duration", []string{"request", "a/b", "--for", "soon", "--reason", "x"}, "must be a duration"},
		{"deny without comment", []string{"deny", "req_1"}, "deny needs --comment"},
		{"revoke without reason", []string{"revoke", "grt_1"}, "revoke needs --reason"},
		{"tail bad level", []string{"tail", "a/b", "--level", "loud"}, "--level must be one of"},
		{"tail bad output", []string{"tail", "a/b", "--output", "xml"}, "--output must be one of text, json"},
		{"audit search bad output", []string{"audit", "search", "--output", "xml"}, "--output must be one of table, json, csv"},
		{"source create without stream", []string{"source", "create", "--name", "x"}, "at least one --stream"},
		{"completion unknown shell", []string{"completion", "tcsh"}, "bash, zsh and fish"},
		{"bad server", []string{"whoami", "--server", "ftp://x"}, "must be an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := ct.run(tt.args...)
			if code != exitcode.Usage || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tt.wantErr)
			}
		})
	}
}

func TestNotSignedInSaysHowToFix(t *testing.T) {
	ct := newCLI(t, "http://127.0.0.1:1")
	_, errOut, code := ct.run("grants")
	if code != exitcode.Failure || !strings.Contains(errOut, "not signed in to http://127.0.0.1:1: run `loggate login --server http://127.0.0.1:1`") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	ct.env["LOGGATE_SERVER"] = ""
	if _, errOut, _ := ct.run("grants"); !strings.Contains(errOut, "no server: pass --server URL") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  string
		wantFor  string
		wantWait bool
	}{
		{"flags after", []string{"a/b", "--for", "1m", "--wait"}, "a/b", "1m", true},
		{"flags before", []string{"--for", "1m", "a/b"}, "a/b", "1m", false},
		{"double dash", []string{"--for", "1m", "--", "--wait"}, "--wait", "1m", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			f := fs.String("for", "", "")
			w := fs.Bool("wait", false, "")
			pos, err := parseInterspersed(fs, tt.args)
			if err != nil || strings.Join(pos, " ") != tt.wantPos || *f != tt.wantFor || *w != tt.wantWait {
				t.Errorf("got %v %q %v %v", pos, *f, *w, err)
			}
		})
	}
}

func TestCompletionScripts(t *testing.T) {
	ct := newCLI(t, "")
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out := ct.mustRun("completion", shell)
		for _, word := range []string{"request", "tail", "approve", "ship", "search", "--level", "--break-glass"} {
			if shell == "fish" && strings.HasPrefix(word, "--") {
				word = "-l " + word[2:]
			}
			if !strings.Contains(out, word) {
				t.Errorf("%s completion lacks %q", shell, word)
			}
		}
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash to run the script")
	}
	script := ct.mustRun("completion", "bash") + `
COMP_WORDS=(loggate tail --lev); COMP_CWORD=2; _loggate; echo "${COMPREPLY[@]}"
COMP_WORDS=(loggate audit se); COMP_CWORD=2; _loggate; echo "${COMPREPLY[@]}"
COMP_WORDS=(loggate tail --level e); COMP_CWORD=3; _loggate; echo "${COMPREPLY[@]}"
`
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if got, want := string(out), "--level\nsearch\nerror\n"; err != nil || got != want {
		t.Errorf("bash completion: %v\ngot  %q\nwant %q", err, got, want)
	}
}

func TestFormatEntry(t *testing.T) {
	e := api.Entry{Seq: 1, Time: time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.Local), Level: "error", Message: "boom\x1b[31m\r\nnext",
		Attrs: map[string]string{"b": "two words", "a": "1"}, Pod: "p-1"}
	if got, want := formatEntry(e, false), "03:04:05.006 ERROR boom\\u001b[31m\\u000d\\nnext a=1 b=\"two words\" pod=p-1\n"; got != want {
		t.Errorf("plain:\ngot  %q\nwant %q", got, want)
	}
	coloured := formatEntry(e, true)
	if !strings.Contains(coloured, ansiRed+"ERROR"+ansiReset) {
		t.Errorf("coloured output lacks a red level: %q", coloured)
	}
	if strings.Count(coloured, "\x1b[") != 6 {
		t.Errorf("coloured output has escapes other than ours: %q", coloured)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0}, {"99999", 5 * time.Minute},
		{"Wed, 01 Jan 2025 00:00:10 GMT", 10 * time.Second},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFmtLeft(t *testing.T) {
	for d, want := range map[time.Duration]string{50 * time.Second: "50s", 30 * time.Minute: "30m", time.Hour: "1h",
		90 * time.Minute: "1h30m", -time.Second: "0s"} {
		if got := fmtLeft(d); got != want {
			t.Errorf("fmtLeft(%s) = %q, want %q", d, got, want)
		}
	}
}

func FuzzSafeText(f *testing.F) {
	for _, s := range []string{"plain", "esc \x1b[2J", "cr\rlf\n", "c1 \u009b31m", "bad \xff utf8", "tab\tok", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := safeText(s)
		for _, r := range out {
			if r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
				t.Fatalf("safeText(%q) = %q keeps control %U", s, out, r)
			}
		}
	})
}

func FuzzToNDJSON(f *testing.F) {
	for _, s := range []string{"plain", `{"message":"x"}`, `{broken`, "  ", "[1,2]", "\"str\"", "crlf\r\n", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		out := toNDJSON(line)
		if out == nil {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("toNDJSON(%q) = %q is not a JSON object: %v", line, out, err)
		}
		if strings.Contains(string(out), "\n") {
			t.Fatalf("toNDJSON(%q) has a newline", line)
		}
	})
}

func FuzzJWTClaims(f *testing.F) {
	f.Add("a.eyJleHAiOjF9.c")
	f.Add("x.y")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := jwtClaims(tok)
		if err == nil && c.Exp == 0 {
			t.Fatalf("jwtClaims(%q) accepted a token without exp", tok)
		}
	})
}

func FuzzEscapeC1(f *testing.F) {
	f.Add([]byte(`{"message":"a\u009bb"}`))
	f.Add([]byte("{\"message\":\"a\u009bb\u2028\"}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		out := escapeC1(raw)
		if !json.Valid(out) {
			t.Fatalf("escapeC1(%q) = %q is not valid JSON", raw, out)
		}
		for _, r := range string(out) {
			if r >= 0x80 && r <= 0x9f {
				t.Fatalf("escapeC1 kept %U", r)
			}
		}
	})
}
