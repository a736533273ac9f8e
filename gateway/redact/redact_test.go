package redact

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/loggate/loggate/gateway/logs"
)

var update = flag.Bool("update", false, "rewrite golden expectations in testdata/secrets.txt")

func newDefault(t testing.TB) *Redactor {
	t.Helper()
	r, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// unescapeNL lets corpus lines hold multi-line text as a literal \n.
func unescapeNL(s string) string { return strings.ReplaceAll(s, `\n`, "\n") }
func escapeNL(s string) string   { return strings.ReplaceAll(s, "\n", `\n`) }

// TestCorpus runs testdata/secrets.txt: each "< input" line is followed by
// the "> expected" redaction.
func TestCorpus(t *testing.T) {
	r := newDefault(t)
	path := filepath.Join("testdata", "secrets.txt")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out []string
	cases := 0
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "< ") {
			out = append(out, l)
			continue
		}
		in := unescapeNL(strings.TrimPrefix(l, "< "))
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], ">") {
			t.Fatalf("line %d: input without expectation", i+1)
		}
		want := unescapeNL(strings.TrimPrefix(strings.TrimPrefix(lines[i+1], ">"), " "))
		i++
		cases++
		got, counts := r.String(in)
		out = append(out, l, "> "+escapeNL(got))
		if *update {
			continue
		}
		if got != want {
			t.Errorf("line %d: String(%q)\n got %q\nwant %q", i, in, got, want)
		}
		if len(counts) == 0 {
			t.Errorf("line %d: no redaction counted for %q", i, in)
		}
	}
	if cases < 20 {
		t.Fatalf("corpus has %d cases, want at least 20", cases)
	}
	if *update {
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLookalikesUnchanged(t *testing.T) {
	r := newDefault(t)
	f, err := os.Open(filepath.Join("testdata", "lookalikes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		n++
		got, counts := r.String(l)
		if got != l || counts != nil {
			t.Errorf("String(%q) = %q, %v; want unchanged, nil", l, got, counts)
		}
		e := logs.Entry{Message: l, Attrs: map[string]string{"detail": l}}
		r.Entry(&e)
		if e.Message != l || e.Attrs["detail"] != l || e.Redactions != nil {
			t.Errorf("Entry(%q) changed it: %+v", l, e)
		}
	}
	if n < 15 {
		t.Fatalf("only %d lookalikes", n)
	}
}

// knownSecret is a secret and the prefix its mask may keep visible.
type knownSecret struct{ rule, secret, keep string }

var knownSecrets = []knownSecret{
	{"github-token", "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d", "ghp_"},
	{"github-token", "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", "github_pat_"},
	{"gitlab-token", "glpat-Y40uvSwMFLZDe1f8rESQ", "glpat-"},
	{"slack-token", "xoxb-104974650752-917034236671-kCzJr4i0B3JrTAwR4y9ojflj", "xoxb-"},
	{"stripe-key", "sk_live_oQoaF1LlqsajAIxNKu8iS2G8", "sk_live_"},
	{"stripe-key", "rk_live_NPRVdD53X83RZJzzzzgEOzdm", "rk_live_"},
	{"google-api-key", "AIzaiA4uoRgnatmUdjAWtGSU8po_799NksnRH9u", "AIza"},
	{"aws-access-key", "AKIABNXJBTFQXKWOVOMP", "AKIA"},
	{"jwt", "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiMTIzNDU2Nzg5MCIsICJuYW1lIjogIkphbmUgRG9lIiwgImlhdCI6IDE1MTYyMzkwMjJ9.uvqdt7s8Stqcbnr3yBdGBLEPH1qhT61qtc4xatws8ph", ""},
	{"card-number", "4242424242424242", ""},
	{"card-number", "5555 5555 5555 4444", ""},
}

// survivingRun returns the first run of 8 or more characters of secret that
// is visible in out, not counting the allowed prefix or a card's last four.
func survivingRun(out, secret, keep string) string {
	const run = 8
	for i := 0; i+run <= len(secret); i++ {
		w := secret[i : i+run]
		if i+run <= len(keep) {
			continue
		}
		if strings.Contains(out, w) {
			return w
		}
	}
	return ""
}

// TestNoSecretRunSurvives embeds every known secret in many contexts (free
// text, key=value, JSON, attribute values) and asserts no 8-character run
// of it stays visible.
func TestNoSecretRunSurvives(t *testing.T) {
	r := newDefault(t)
	templates := []string{
		"%s",
		"value %s end",
		"token=%s",
		`{"auth":"%s","ok":true}`,
		"Authorization: Bearer %s",
		"(%s)",
		"a,%s;b",
		"line1\n%s\nline3",
	}
	for _, ks := range knownSecrets {
		for _, tmpl := range templates {
			in := strings.Replace(tmpl, "%s", ks.secret, 1)
			got, counts := r.String(in)
			if w := survivingRun(got, ks.secret, ks.keep); w != "" {
				t.Errorf("String(%q) = %q: run %q of the %s secret survives", in, got, w, ks.rule)
			}
			if len(counts) == 0 {
				t.Errorf("String(%q): no redaction counted", in)
			}
			e := logs.Entry{Message: "m", Attrs: map[string]string{"field": in, in: "v"}}
			r.Entry(&e)
			for k, v := range e.Attrs {
				if w := survivingRun(k+" "+v, ks.secret, ks.keep); w != "" {
					t.Errorf("Entry attr %q: %q=%q keeps %q", in, k, v, w)
				}
			}
		}
	}
}

func TestEntry(t *testing.T) {
	r := newDefault(t)
	e := logs.Entry{
		Message: "login bob@example.com with password=hunter2hunter2",
		Attrs: map[string]string{
			"db.password":                       "CorrectHorse",
			"http.request.header.authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
			"user.token":                        "",
			"tokens_used":                       "1234",
			"card":                              "4242-4242-4242-4242",
			"ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d": "key as name",
			"status": "500",
		},
	}
	r.Entry(&e)
	want := logs.Entry{
		Message: "login b***@example.com with password=[REDACTED:kv-secret]",
		Attrs: map[string]string{
			"db.password":                       "[REDACTED:secret-key]",
			"http.request.header.authorization": "[REDACTED:secret-key]",
			"user.token":                        "",
			"tokens_used":                       "1234",
			"card":                              "****-****-****-4242",
			"ghp_****":                          "key as name",
			"status":                            "500",
		},
		Redactions: map[string]int{"email": 1, "kv-secret": 1, "secret-key": 2, "card-number": 1, "github-token": 1},
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("Entry mismatch (-want +got):\n%s", diff)
	}
}

func TestTruncation(t *testing.T) {
	r, err := New(Config{MaxScanBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("word ", 10) + "token=" + strings.Repeat("x", 200)
	e := logs.Entry{Message: long}
	r.Entry(&e)
	if !e.Truncated {
		t.Errorf("Truncated = false, want true")
	}
	if !strings.HasSuffix(e.Message, TruncatedMarker) {
		t.Errorf("Message %q lacks the truncation marker", e.Message)
	}
	if strings.Contains(e.Message, "xxxxxxxx") {
		t.Errorf("Message %q leaks the cut secret", e.Message)
	}
	short := logs.Entry{Message: "fine"}
	r.Entry(&short)
	if short.Truncated || short.Redactions != nil {
		t.Errorf("short entry: %+v, want untouched", short)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
		in      string
		want    string
	}{
		{name: "default", in: "mail a@b.io", want: "mail a***@b.io"},
		{name: "disable email", cfg: Config{Disable: []string{"email"}}, in: "mail a@b.io", want: "mail a@b.io"},
		{name: "disable unknown", cfg: Config{Disable: []string{"emails"}}, wantErr: true},
		{name: "extra rule", cfg: Config{Extra: []Rule{{Name: "ticket", Pattern: `TCK-\d+`, Keywords: []string{"tck-"}}}},
			in: "see tck-12 and TCK-34", want: "see tck-12 and [REDACTED:ticket]"},
		{name: "extra without keywords", cfg: Config{Rules: []Rule{{Name: "digits", Pattern: `\d{3,}`}}},
			in: "id 12345 x 12", want: "id [REDACTED:digits] x 12"},
		{name: "duplicate", cfg: Config{Extra: []Rule{{Name: "email", Pattern: "x"}}}, wantErr: true},
		{name: "bad regexp", cfg: Config{Extra: []Rule{{Name: "bad", Pattern: "(?<x"}}}, wantErr: true},
		{name: "no pattern", cfg: Config{Extra: []Rule{{Name: "empty"}}}, wantErr: true},
		{name: "bad name", cfg: Config{Extra: []Rule{{Name: "a b", Pattern: "x"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got, _ := r.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRuleNames(t *testing.T) {
	r := newDefault(t)
	got := r.RuleNames()
	if len(got) != len(DefaultRules()) || got[0] != "secret-key" {
		t.Errorf("RuleNames() = %v", got)
	}
}

func TestKeywordIndex(t *testing.T) {
	k, err := newKeywordIndex([]string{"he", "she", "his", "hers", "://", "Token"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"ushers", []string{"he", "she", "hers"}},
		{"HIS", []string{"his"}},
		{"https://x", []string{"://"}},
		{"a TOKEN b", []string{"token"}},
		{"nothing", nil},
	}
	for _, tt := range tests {
		got, any := k.scan(tt.in)
		want := k.bits(tt.want)
		if got != want || any != (len(tt.want) > 0) {
			t.Errorf("scan(%q) = %v %v, want %v", tt.in, got, any, want)
		}
	}
}

func TestCards(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"4242 4242 4242 4242", "**** **** **** 4242"},
		{"x 4242424242424242 y", "x ************4242 y"},
		{"id4242424242424242", "id4242424242424242"},
		{"4242424242424241", "4242424242424241"},
		{"1111111111111117", "1111111111111117"},
		{"4242 4242 4242 4242 123", "**** **** **** 4242 123"},
		{"4242--4242-4242-4242", "4242--4242-4242-4242"},
		{"378282246310005", "***********0005"},
	}
	r := newDefault(t)
	for _, tt := range tests {
		if got, _ := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCountedOnce checks that a value masked by a specific rule is not
// masked (and counted) again by a generic one.
func TestCountedOnce(t *testing.T) {
	r := newDefault(t)
	tests := []struct {
		in   string
		want map[string]int
	}{
		{`{"AWS_SECRET_ACCESS_KEY": "ZDz+TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zk"}`, map[string]int{"aws-secret-key": 1}},
		{"Authorization: Bearer " + knownSecrets[8].secret, map[string]int{"jwt": 1}},
		{"token=" + knownSecrets[0].secret, map[string]int{"github-token": 1}},
		{"token=5555 5555 5555 4444", map[string]int{"card-number": 1}},
		{`password="sk_live_oQoaF1LlqsajAIxNKu8iS2G8"`, map[string]int{"stripe-key": 1}},
		{"a@b.io c@d.io", map[string]int{"email": 2}},
		{"nothing here", nil},
	}
	for _, tt := range tests {
		_, got := r.String(tt.in)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("String(%q) counts (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestConcurrentUse shares one Redactor between goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	r := newDefault(t)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				e := logs.Entry{Message: "token=" + knownSecrets[i%len(knownSecrets)].secret, Attrs: map[string]string{"password": "x1234567"}}
				r.Entry(&e)
				if e.Redactions["secret-key"] != 1 {
					t.Errorf("Redactions = %v", e.Redactions)
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
