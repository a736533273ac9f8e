package redact

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/loggate/loggate/gateway/logs"
)

// TruncatedMarker ends text that was cut to Config.MaxScanBytes.
const TruncatedMarker = " …[truncated]"

// Config configures a Redactor.
type Config struct {
	// Rules is the rule set. If nil, DefaultRules().
	Rules []Rule
	// Disable names rules of Rules to leave out. An unknown name is an error,
	// so that a typo cannot silently keep a rule on or off.
	Disable []string
	// Extra rules are appended after Rules.
	Extra []Rule
	// MaxScanBytes caps the text scanned per message, attribute key or value.
	// Longer text is cut (at a rune boundary, preferably at a space) and ends
	// with TruncatedMarker; the cut text is scanned. If zero, 64 KiB.
	MaxScanBytes int
}

// Redactor applies a rule set. It is immutable after New and safe for
// concurrent use.
type Redactor struct {
	kw        *keywordIndex
	textRules []compiled
	keyRules  []compiled
	names     []string
	maxScan   int
}

type compiled struct {
	name     string
	re       *regexp.Regexp
	group    int // submatch index of "secret", 0 for the whole match
	find     func(string) [][]int
	validate func(string) bool
	mask     func(string) string
	need     kwBits
	always   bool // no keywords: runs on every text
}

// New compiles the rules of cfg.
func New(cfg Config) (*Redactor, error) {
	rules := cfg.Rules
	if rules == nil {
		rules = DefaultRules()
	}
	disabled := make(map[string]bool, len(cfg.Disable))
	for _, n := range cfg.Disable {
		disabled[n] = false
	}
	var active []Rule
	for _, r := range rules {
		if _, ok := disabled[r.Name]; ok {
			disabled[r.Name] = true
			continue
		}
		active = append(active, r)
	}
	for n, used := range disabled {
		if !used {
			return nil, fmt.Errorf("redact: disable unknown rule %q", n)
		}
	}
	active = append(active, cfg.Extra...)

	var keywords []string
	for _, r := range active {
		keywords = append(keywords, r.Keywords...)
	}
	kw, err := newKeywordIndex(keywords)
	if err != nil {
		return nil, fmt.Errorf("redact: keywords: %w", err)
	}
	rd := &Redactor{kw: kw, maxScan: cfg.MaxScanBytes}
	if rd.maxScan <= 0 {
		rd.maxScan = 64 << 10
	}
	seen := make(map[string]bool)
	for _, r := range active {
		if r.Name == "" || strings.ContainsAny(r.Name, "[]: ") {
			return nil, fmt.Errorf("redact: rule name %q: must be non-empty without spaces, colons or brackets", r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("redact: duplicate rule %q", r.Name)
		}
		seen[r.Name] = true
		c := compiled{
			name:     r.Name,
			find:     r.Find,
			validate: r.Validate,
			mask:     r.Mask,
			need:     kw.bits(r.Keywords),
			always:   len(r.Keywords) == 0,
		}
		if r.Pattern == "" && (r.Find == nil || r.KeyOnly) {
			return nil, fmt.Errorf("redact: rule %q: no pattern", r.Name)
		}
		if r.Pattern != "" {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("redact: rule %q: %w", r.Name, err)
			}
			c.re = re
			if i := re.SubexpIndex("secret"); i > 0 {
				c.group = i
			}
		}
		if c.mask == nil {
			full := RedactedMark + r.Name + "]"
			c.mask = func(string) string { return full }
		}
		rd.names = append(rd.names, r.Name)
		if r.KeyOnly {
			rd.keyRules = append(rd.keyRules, c)
		} else {
			rd.textRules = append(rd.textRules, c)
		}
	}
	return rd, nil
}

// RuleNames returns the active rule names in evaluation order.
func (r *Redactor) RuleNames() []string { return append([]string(nil), r.names...) }

// String redacts free text (a request reason, a comment) with the text
// rules, truncating it first if it is longer than MaxScanBytes. The map
// counts masks per rule and is nil when nothing was masked.
func (r *Redactor) String(s string) (string, map[string]int) {
	var counts map[string]int
	s, _ = r.truncate(s)
	return r.text(s, &counts), counts
}

// Entry redacts e in place: its message, attribute keys and values. Values of
// secret-looking keys are masked whole. It sets e.Redactions (adding to any
// existing counts) and e.Truncated when text was cut.
func (r *Redactor) Entry(e *logs.Entry) {
	counts := e.Redactions
	msg, cut := r.truncate(e.Message)
	e.Truncated = e.Truncated || cut
	e.Message = r.text(msg, &counts)

	type rename struct{ from, to, val string }
	var renames []rename
	for k, v := range e.Attrs {
		nv, cut := r.truncate(v)
		e.Truncated = e.Truncated || cut
		if r.secretKey(k) {
			if nv != "" && !isMasked(nv) {
				nv = r.keyRules[r.keyRule(k)].mask(nv)
				add(&counts, r.keyRules[r.keyRule(k)].name, 1)
			}
		} else {
			nv = r.text(nv, &counts)
		}
		nk, cut := r.truncate(k)
		e.Truncated = e.Truncated || cut
		nk = r.text(nk, &counts)
		switch {
		case nk != k:
			renames = append(renames, rename{k, nk, nv})
		case nv != v:
			e.Attrs[k] = nv
		}
	}
	for _, rn := range renames {
		delete(e.Attrs, rn.from)
	}
	for _, rn := range renames {
		e.Attrs[rn.to] = rn.val
	}
	e.Redactions = counts
}

// secretKey reports whether a key-only rule matches the attribute key.
func (r *Redactor) secretKey(k string) bool { return r.keyRule(k) >= 0 }

func (r *Redactor) keyRule(k string) int {
	if len(r.keyRules) == 0 {
		return -1
	}
	found, any := r.kw.scan(k)
	for i := range r.keyRules {
		c := &r.keyRules[i]
		if !c.always && (!any || !found.intersects(&c.need)) {
			continue
		}
		if c.re.MatchString(k) {
			return i
		}
	}
	return -1
}

// text applies the text rules to s. It allocates only when something is
// masked.
func (r *Redactor) text(s string, counts *map[string]int) string {
	if s == "" {
		return s
	}
	found, any := r.kw.scan(s)
	for i := range r.textRules {
		c := &r.textRules[i]
		if !c.always && (!any || !found.intersects(&c.need)) {
			continue
		}
		var n int
		s, n = c.apply(s)
		if n > 0 {
			add(counts, c.name, n)
		}
	}
	return s
}

func add(counts *map[string]int, name string, n int) {
	if *counts == nil {
		*counts = make(map[string]int)
	}
	(*counts)[name] += n
}

// apply masks every validated match of c in s.
func (c *compiled) apply(s string) (string, int) {
	var locs [][]int
	if c.find != nil {
		locs = c.find(s)
	} else {
		locs = c.re.FindAllStringSubmatchIndex(s, -1)
	}
	if len(locs) == 0 {
		return s, 0
	}
	var b strings.Builder
	last, n := 0, 0
	for _, loc := range locs {
		a, z := loc[0], loc[1]
		if c.group > 0 && loc[2*c.group] >= 0 {
			a, z = loc[2*c.group], loc[2*c.group+1]
		}
		part := s[a:z]
		if part == "" || a < last || isMasked(part) {
			continue
		}
		if c.validate != nil && !c.validate(part) {
			continue
		}
		if n == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:a])
		b.WriteString(c.mask(part))
		last = z
		n++
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[last:])
	return b.String(), n
}

// isMasked reports whether a candidate is the output of an earlier mask, so
// that a later, more generic rule does not mask (and count) it again.
func isMasked(s string) bool {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	if strings.HasPrefix(s, RedactedMark) && strings.IndexByte(s, ']') == len(s)-1 {
		return true
	}
	return strings.HasSuffix(s, "****")
}

// truncate cuts s to the scan limit, at a rune boundary and, when one is
// near, at whitespace so that a token is not split into a shorter, harder to
// recognise fragment.
func (r *Redactor) truncate(s string) (string, bool) {
	if len(s) <= r.maxScan {
		return s, false
	}
	cut := r.maxScan
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	lo := max(cut-128, 0)
	if sp := strings.LastIndexAny(s[lo:cut], " \t\r\n"); sp >= 0 {
		cut = lo + sp
	}
	return s[:cut] + TruncatedMarker, true
}
