package alert

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAcceptsTheContractKeys(t *testing.T) {
	src := `
- name: checkout-errors
  kind: log
  service: check*
  env: prod
  level: error
  message: 'payment (failed|declined)'
  attributes: {region: eu}
  attributes_match: {path: '^/api/'}
  threshold: 10
  window: 5m
  for: 1m
  severity: critical
  group_by: [region]
  labels: {team: payments}
  annotations: {runbook: 'https://runbooks/checkout'}
- name: job-silent
  service: batch
  env: prod
  message: job finished
  absent: true
  window: 10m
- name: brute-force
  kind: audit
  action: auth.failed
  outcome: failure
  threshold: 5
  window: 5m
  group_by: [actor]
`
	rs, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rs.Names(), ","), "checkout-errors,job-silent,brute-force"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}
	if rs.rules[0].literal != "payment " {
		t.Errorf("literal = %q, want %q", rs.rules[0].literal, "payment ")
	}
	if rs.Rules[1].Severity != "warning" || rs.Rules[1].Kind != KindLog {
		t.Errorf("defaults not applied: %+v", rs.Rules[1])
	}
	if !strings.HasPrefix(rs.Digest, "sha256:") {
		t.Errorf("digest = %q", rs.Digest)
	}
	// JSON is accepted as well.
	if _, err := Parse("rules.json", []byte(`[{"name":"x","service":"a","env":"b","window":"1m"}]`)); err != nil {
		t.Errorf("JSON list: %v", err)
	}
}

func TestParseNamesFileRuleAndField(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"bad regex", "- {name: a, message: '(', window: 1m}", []string{"rules.yaml", `rule "a"`, "field message", "RE2"}},
		{"unknown field", "- {name: a, window: 1m, thresold: 3}", []string{`rule "a"`, "field thresold", "unknown field"}},
		{"zero window", "- {name: a, window: 0s}", []string{`rule "a"`, "field window", "positive"}},
		{"negative window", "- {name: a, window: -1m}", []string{"field window", "positive"}},
		{"missing window", "- {name: a}", []string{"field window", "required"}},
		{"duplicate names", "- {name: a, window: 1m}\n- {name: a, window: 2m}", []string{`rule "a"`, "field name", "duplicate"}},
		{"not a list", "name: a\nwindow: 1m\n", []string{"rules.yaml", "must be a list"}},
		{"not yaml", "- [", []string{"rules.yaml", "not YAML"}},
		{"bad level", "- {name: a, level: loud, window: 1m}", []string{"field level"}},
		{"audit without action", "- {name: a, kind: audit, window: 1m}", []string{"field action"}},
		{"wrong type", "- {name: a, window: 1m, threshold: lots}", []string{`rule "a"`, "threshold"}},
		{"reserved label", "- {name: a, window: 1m, labels: {alertname: x}}", []string{"field labels.alertname"}},
		{"grouped absence", "- {name: a, window: 1m, absent: true, group_by: [x]}", []string{"field group_by"}},
		{"bad glob", "- {name: a, window: 1m, service: '['}", []string{"field service"}},
		{"sampled audit rule", "- {name: a, kind: audit, action: x, window: 1m, sample: true}", []string{`rule "a"`, "field sample", "log rules"}},
		{"sampled absence", "- {name: a, window: 1m, absent: true, sample: true}", []string{`rule "a"`, "field sample"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRequiredLiteral(t *testing.T) {
	for expr, want := range map[string]string{
		"timeout":              "timeout",
		"^db (conn|link) lost": " lost",
		"(?i)timeout":          "",
		"a|b":                  "",
		"x+upstream.*5\\d\\d":  "upstream",
		"":                     "",
	} {
		if got := requiredLiteral(expr); got != want {
			t.Errorf("requiredLiteral(%q) = %q, want %q", expr, got, want)
		}
	}
}

func TestScannerFindsEveryLiteral(t *testing.T) {
	lits := []string{"he", "she", "his", "hers", "timeout"}
	sc := newScanner(lits)
	hit := make([]uint64, 1)
	sc.scan("ushers had a timeou", hit)
	want := map[int]bool{0: true, 1: true, 3: true}
	for i := range lits {
		if got := hit[0]&(1<<i) != 0; got != want[i] {
			t.Errorf("literal %q: hit = %v, want %v", lits[i], got, want[i])
		}
	}
}

func TestDiff(t *testing.T) {
	a, _ := Parse("a", []byte("- {name: x, window: 1m}\n- {name: y, window: 1m}"))
	b, _ := Parse("b", []byte("- {name: y, window: 2m}\n- {name: z, window: 1m}"))
	added, removed := Diff(a, b)
	if strings.Join(added, ",") != "z" || strings.Join(removed, ",") != "x" {
		t.Errorf("diff = +%v -%v", added, removed)
	}
	if got := Changed(a, b); strings.Join(got, ",") != "y" {
		t.Errorf("changed = %v", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("- {name: a, window: 1m, message: 'x+y'}"))
	f.Add([]byte(`[{"name":"b","kind":"audit","action":"auth.*","window":"5m","threshold":5}]`))
	f.Add([]byte("- {name: a, absent: true, window: 10m}\n- 3\n- [x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %v is not a ParseError with problems", err)
			}
			return
		}
		if len(rs.Rules) != len(rs.rules) {
			t.Fatal("rules and compiled rules differ in length")
		}
		for _, c := range rs.rules {
			if c.window <= 0 || c.threshold < 1 {
				t.Fatalf("accepted rule %q with window %v threshold %d", c.Name, c.window, c.threshold)
			}
		}
	})
}

func TestDefaultRulesParse(t *testing.T) {
	rs, err := Parse("defaults.yaml", DefaultRules)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) < 5 {
		t.Errorf("%d default rules, want at least 5", len(rs.Rules))
	}
}
