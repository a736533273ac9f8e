package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loggate/loggate/gateway/logs"
)

// Rule kinds.
const (
	KindLog   = "log"
	KindAudit = "audit"
)

// Rule is one entry of a rules file, as written. Durations are Go duration
// strings ("5m"); globs are path.Match patterns ("check*").
type Rule struct {
	Name string `yaml:"name" json:"name"`
	// Kind is "log" (the default) or "audit".
	Kind string `yaml:"kind" json:"kind,omitempty"`
	// Service and Env select streams (globs); empty means any. For an audit
	// rule they match the event's target stream.
	Service string `yaml:"service" json:"service,omitempty"`
	Env     string `yaml:"env" json:"env,omitempty"`
	// Level is the minimum level of a matching line (log rules).
	Level string `yaml:"level" json:"level,omitempty"`
	// Message is an RE2 regular expression the message must match.
	Message string `yaml:"message" json:"message,omitempty"`
	// Attributes must equal these values; AttributesMatch must match
	// these RE2 expressions.
	Attributes      map[string]string `yaml:"attributes" json:"attributes,omitempty"`
	AttributesMatch map[string]string `yaml:"attributes_match" json:"attributes_match,omitempty"`
	// Action (glob), Outcome and Actor (glob on subject, email or name)
	// select audit events (audit rules).
	Action  string `yaml:"action" json:"action,omitempty"`
	Outcome string `yaml:"outcome" json:"outcome,omitempty"`
	Actor   string `yaml:"actor" json:"actor,omitempty"`
	// Threshold is the count in Window at which the rule fires; zero means 1.
	Threshold int `yaml:"threshold" json:"threshold,omitempty"`
	// Absent turns the rule around: it fires when no line matched for
	// Window.
	Absent bool   `yaml:"absent" json:"absent,omitempty"`
	Window string `yaml:"window" json:"window"`
	// For is how long the condition must hold before the alert fires.
	For      string `yaml:"for" json:"for,omitempty"`
	Severity string `yaml:"severity" json:"severity,omitempty"`
	// GroupBy names attributes (log rules) or event fields (audit rules:
	// actor, action, outcome, service, env, or details.KEY) whose values
	// split the rule into one alert per group.
	GroupBy []string `yaml:"group_by" json:"group_by,omitempty"`
	// Sample asks for one sample of the matching line (already redacted)
	// on the alert (log rules). Policy decides, per alert, whether the
	// sample may be kept and delivered (the alert_sample action).
	Sample      bool              `yaml:"sample" json:"sample,omitempty"`
	Labels      map[string]string `yaml:"labels" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations" json:"annotations,omitempty"`
}

// Problem is one thing wrong with a rules file.
type Problem struct {
	File  string `json:"file"`
	Index int    `json:"index"` // 0-based position in the list; -1 for the whole file
	Rule  string `json:"rule,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Index >= 0 {
		if p.Rule != "" {
			fmt.Fprintf(&b, ": rule %q", p.Rule)
		} else {
			fmt.Fprintf(&b, ": rule #%d", p.Index+1)
		}
	}
	if p.Field != "" {
		fmt.Fprintf(&b, ": field %s", p.Field)
	}
	return b.String() + ": " + p.Msg
}

// ParseError lists every problem found in a rules file.
type ParseError struct{ Problems []Problem }

func (e *ParseError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return "alert rules: " + strings.Join(s, "; ")
}

// ErrInvalid is matched by every *ParseError (errors.Is).
var ErrInvalid = errors.New("alert rules: invalid")

func (e *ParseError) Is(target error) bool { return target == ErrInvalid }

// RuleSet is a parsed, validated rules file.
type RuleSet struct {
	File   string // the name Parse was given
	Rules  []Rule
	Digest string // "sha256:<hex>" of the file's bytes
	rules  []*compiled
}

// Names lists the rule names, in file order.
func (rs *RuleSet) Names() []string {
	out := make([]string, len(rs.Rules))
	for i, r := range rs.Rules {
		out[i] = r.Name
	}
	return out
}

// ruleKeys maps the keys a rule may have (Rule's yaml tags) to field
// indexes. Read-only after package initialisation.
var ruleKeys = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[Rule]()
	for i := range t.NumField() {
		m[strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]] = i
	}
	return m
}()

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`)
	// reserved labels are set by loggate itself.
	reserved = map[string]bool{"alertname": true, "service": true, "env": true, "severity": true}
)

// MaxRules bounds a rules file.
const MaxRules = 1000

// Parse reads a rules file: a YAML (or JSON, which is YAML) list of rules.
// file names the source in messages. Every problem is reported, each with
// the file, the rule and the field.
func Parse(file string, data []byte) (*RuleSet, error) {
	sum := sha256.Sum256(data)
	rs := &RuleSet{File: file, Digest: "sha256:" + hex.EncodeToString(sum[:])}
	fail := func(msg string) error {
		return &ParseError{Problems: []Problem{{File: file, Index: -1, Msg: msg}}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fail("not YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 { // empty file: no rules
		return rs, nil
	}
	list := &doc
	if list.Kind == yaml.DocumentNode && len(list.Content) == 1 {
		list = list.Content[0]
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fail("must be a list of rules (a YAML sequence or JSON array)")
	}
	if len(list.Content) > MaxRules {
		return nil, fail(fmt.Sprintf("has %d rules; at most %d are allowed", len(list.Content), MaxRules))
	}
	var probs []Problem
	seen := map[string]int{}
	for i, item := range list.Content {
		add := func(rule, field, msg string) {
			probs = append(probs, Problem{File: file, Index: i, Rule: rule, Field: field, Msg: msg})
		}
		if item.Kind != yaml.MappingNode {
			add("", "", "must be a mapping of keys to values")
			continue
		}
		name := ""
		for j := 0; j+1 < len(item.Content); j += 2 {
			if item.Content[j].Value == "name" {
				name = item.Content[j+1].Value
			}
		}
		// Each key is decoded on its own, so a type error names its field.
		bad := false
		var r Rule
		rv := reflect.ValueOf(&r).Elem()
		for j := 0; j+1 < len(item.Content); j += 2 {
			k := item.Content[j].Value
			fi, ok := ruleKeys[k]
			if !ok {
				add(name, k, fmt.Sprintf("unknown field (line %d)", item.Content[j].Line))
				bad = true
				continue
			}
			if err := item.Content[j+1].Decode(rv.Field(fi).Addr().Interface()); err != nil {
				add(name, k, typeMessage(err))
				bad = true
			}
		}
		if bad {
			continue
		}
		c, ps := compile(r)
		for _, p := range ps {
			add(r.Name, p.Field, p.Msg)
		}
		if r.Name != "" {
			if first, dup := seen[r.Name]; dup {
				add(r.Name, "name", fmt.Sprintf("duplicate name (also rule #%d)", first+1))
			}
			seen[r.Name] = i
		}
		if len(ps) == 0 {
			c.index = i
			rs.Rules = append(rs.Rules, c.Rule)
			rs.rules = append(rs.rules, c)
		}
	}
	if len(probs) > 0 {
		return nil, &ParseError{Problems: probs}
	}
	return rs, nil
}

// typeMessage shortens yaml.v3's type errors ("line 3: cannot unmarshal
// !!str `x` into int") to what a person needs.
func typeMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}

// compiled is a rule ready to evaluate.
type compiled struct {
	Rule
	index     int
	absent    bool
	audit     bool
	minLevel  int
	message   *regexp.Regexp
	literal   string // a substring every matching message contains; "" if none known
	attrEq    []attrEq
	attrRE    []attrRE
	threshold int64
	window    time.Duration
	pending   time.Duration
}

type attrEq struct{ key, value string }

type attrRE struct {
	key string
	re  *regexp.Regexp
}

type fieldProblem struct{ Field, Msg string }

func compile(r Rule) (*compiled, []fieldProblem) {
	var ps []fieldProblem
	bad := func(field, format string, args ...any) {
		ps = append(ps, fieldProblem{field, fmt.Sprintf(format, args...)})
	}
	c := &compiled{Rule: r}
	for _, k := range slices.Sorted(maps.Keys(r.Attributes)) {
		c.attrEq = append(c.attrEq, attrEq{k, r.Attributes[k]})
	}
	if !nameRE.MatchString(r.Name) {
		bad("name", "is required: letters, digits and _.:- (at most 128)")
	}
	switch r.Kind {
	case "", KindLog:
		c.Kind = KindLog
	case KindAudit:
		c.audit = true
	default:
		bad("kind", "must be log or audit, not %q", r.Kind)
	}
	for _, g := range []struct{ field, v string }{{"service", r.Service}, {"env", r.Env}, {"action", r.Action}, {"actor", r.Actor}} {
		if _, err := path.Match(g.v, ""); err != nil {
			bad(g.field, "bad glob %q", g.v)
		}
	}
	if r.Level != "" {
		if c.minLevel = logs.LevelRank(r.Level); c.minLevel == 0 {
			bad("level", "must be trace, debug, info, warn, error or fatal, not %q", r.Level)
		}
	}
	if r.Message != "" {
		re, err := regexp.Compile(r.Message)
		if err != nil {
			bad("message", "bad RE2 regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		} else {
			c.message, c.literal = re, requiredLiteral(r.Message)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.AttributesMatch)) {
		re, err := regexp.Compile(r.AttributesMatch[k])
		if err != nil {
			bad("attributes_match."+k, "bad RE2 regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			continue
		}
		c.attrRE = append(c.attrRE, attrRE{k, re})
	}
	if c.audit {
		if r.Action == "" {
			bad("action", "is required for an audit rule (a glob such as auth.failed or grant.*)")
		}
		for _, f := range []struct{ field, v string }{{"level", r.Level}, {"message", r.Message}} {
			if f.v != "" {
				bad(f.field, "is for log rules; an audit rule matches action, outcome and actor")
			}
		}
		if len(r.Attributes)+len(r.AttributesMatch) > 0 {
			bad("attributes", "is for log rules")
		}
		if r.Sample {
			bad("sample", "is for log rules; an audit event is in the audit trail already")
		}
	} else if r.Action != "" || r.Outcome != "" || r.Actor != "" {
		bad("action", "action, outcome and actor are for audit rules (kind: audit)")
	}
	switch r.Outcome {
	case "", "success", "denied", "failure", "error", "interrupted":
	default:
		bad("outcome", "must be success, denied, failure, error or interrupted, not %q", r.Outcome)
	}
	c.threshold = int64(r.Threshold)
	switch {
	case r.Threshold < 0:
		bad("threshold", "must be a positive count, not %d", r.Threshold)
	case r.Threshold == 0:
		c.threshold = 1
	}
	if r.Absent {
		c.absent = true
		if r.Threshold > 1 {
			bad("threshold", "an absence rule fires when nothing matched: no threshold")
		}
		if len(r.GroupBy) > 0 {
			bad("group_by", "an absence rule cannot be grouped (nothing arrives to group by)")
		}
		if r.Sample {
			bad("sample", "an absence rule has no matching line to sample")
		}
	}
	if r.Window == "" {
		bad("window", "is required (a Go duration such as 5m)")
	} else if d, err := time.ParseDuration(r.Window); err != nil {
		bad("window", "%q is not a Go duration such as 5m", r.Window)
	} else if d <= 0 {
		bad("window", "must be positive, not %s", r.Window)
	} else if d > 24*time.Hour {
		bad("window", "at most 24h, not %s", r.Window)
	} else {
		c.window = d
	}
	if r.For != "" {
		if d, err := time.ParseDuration(r.For); err != nil || d < 0 {
			bad("for", "%q is not a non-negative Go duration such as 2m", r.For)
		} else {
			c.pending = d
		}
	}
	switch r.Severity {
	case "":
		c.Severity = "warning"
	case "info", "warning", "critical", "page":
	default:
		bad("severity", "must be info, warning, critical or page, not %q", r.Severity)
	}
	for _, g := range r.GroupBy {
		if g == "" || len(g) > 128 {
			bad("group_by", "an empty or overlong name")
		}
	}
	if len(r.GroupBy) > 8 {
		bad("group_by", "at most 8 names")
	}
	for k := range r.Labels {
		if !labelRE.MatchString(k) {
			bad("labels."+k, "a label name is letters, digits and _, not starting with a digit")
		} else if reserved[k] {
			bad("labels."+k, "is set by loggate")
		}
	}
	for k := range r.Annotations {
		if !labelRE.MatchString(k) {
			bad("annotations."+k, "an annotation name is letters, digits and _, not starting with a digit")
		}
	}
	return c, ps
}

// Unmatched reports the log rules whose service and env select none of
// streams (the streams loggate knows). Audit rules and rules without a
// selector are not checked.
func (rs *RuleSet) Unmatched(streams []logs.Stream) *ParseError {
	var probs []Problem
	for _, c := range rs.rules {
		if c.audit || (c.Service == "" && c.Env == "") {
			continue
		}
		found := false
		for _, st := range streams {
			if globOK(c.Service, st.Service) && globOK(c.Env, st.Env) {
				found = true
				break
			}
		}
		if !found {
			field := "service"
			if c.Service == "" {
				field = "env"
			}
			probs = append(probs, Problem{File: rs.File, Index: c.index, Rule: c.Name, Field: field,
				Msg: fmt.Sprintf("selects no known stream (service %q, env %q)", c.Service, c.Env)})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return &ParseError{Problems: probs}
}

// labelName turns a group_by name ("http.status") into a label name
// ("http_status").
func labelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || (i > 0 && c >= '0' && c <= '9')) {
			b[i] = '_'
		}
	}
	return string(b)
}

// Diff reports the rule names added and removed from old to new, sorted.
func Diff(old, new *RuleSet) (added, removed []string) {
	o, n := map[string]bool{}, map[string]bool{}
	if old != nil {
		for _, r := range old.Rules {
			o[r.Name] = true
		}
	}
	if new != nil {
		for _, r := range new.Rules {
			n[r.Name] = true
			if !o[r.Name] {
				added = append(added, r.Name)
			}
		}
	}
	for name := range o {
		if !n[name] {
			removed = append(removed, name)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// Changed reports the names of rules present in both sets whose
// definitions differ, sorted.
func Changed(old, new *RuleSet) []string {
	if old == nil || new == nil {
		return nil
	}
	byName := map[string]Rule{}
	for _, r := range old.Rules {
		byName[r.Name] = r
	}
	var out []string
	for _, r := range new.Rules {
		if o, ok := byName[r.Name]; ok && !reflect.DeepEqual(o, r) {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
