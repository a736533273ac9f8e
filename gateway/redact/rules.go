package redact

import "strings"

// Rule is one redaction rule.
type Rule struct {
	// Name identifies the rule in masks, counts and Config.Disable.
	Name string
	// Pattern is an RE2 expression. If it has a capturing group named
	// "secret", only that group is masked (e.g. the value after "password="),
	// otherwise the whole match. For KeyOnly rules it is matched against
	// attribute keys. It may be empty only when Find is set.
	Pattern string
	// Keywords is a cheap prefilter: the rule runs only on text containing
	// one of them (ASCII case-insensitive). Empty means the rule always runs.
	Keywords []string
	// Find, when set, is used instead of Pattern to locate candidates: a
	// hand-written scanner for shapes a regular expression finds slowly (card
	// numbers). It returns [start, end) pairs in increasing order.
	Find func(s string) [][]int
	// Validate, when set, must accept a candidate (the masked part) for it to
	// be masked, e.g. a Luhn check.
	Validate func(match string) bool
	// Mask replaces the masked part. If nil the part becomes "[REDACTED:<Name>]".
	Mask func(match string) string
	// KeyOnly rules apply to attribute keys: the whole value of a key that
	// matches Pattern is masked.
	KeyOnly bool
}

// RedactedMark starts every default full mask: "[REDACTED:<rule>]".
const RedactedMark = "[REDACTED:"

// DefaultRules returns the default rule set, in evaluation order: specific
// token shapes first, so a hit is counted under the most precise rule, then
// generic key=value and PII scanners.
func DefaultRules() []Rule {
	return []Rule{
		{
			Name:     "secret-key",
			KeyOnly:  true,
			Pattern:  `(?i)(?:^|[._-])(?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|authorization|proxy[_-]authorization|cookie|set[_-]cookie|session[_-]?id|credentials?|jwt)$`,
			Keywords: []string{"pass", "pwd", "secret", "token", "key", "auth", "cookie", "session", "credential", "jwt"},
		},
		{
			Name:     "private-key",
			Pattern:  `-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*$)`,
			Keywords: []string{"-----begin"},
		},
		{
			Name:     "jwt",
			Pattern:  `\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*`,
			Keywords: []string{"eyj"},
		},
		{
			Name:     "aws-access-key",
			Pattern:  `\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b`,
			Keywords: []string{"akia", "asia", "abia", "acca", "a3t"},
			Mask:     keepPrefix("AKIA", "ASIA", "ABIA", "ACCA"),
		},
		{
			Name:     "aws-secret-key",
			Pattern:  `(?i)(?:aws)?_?secret_?access_?key["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+=]{40})`,
			Keywords: []string{"secret_access_key", "secretaccesskey"},
		},
		{
			Name:     "github-token",
			Pattern:  `\b(?:gh[pousr]_[0-9A-Za-z]{36,}|github_pat_[0-9A-Za-z_]{22,})\b`,
			Keywords: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
			Mask:     keepPrefix("github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
		},
		{
			Name:     "gitlab-token",
			Pattern:  `\bglpat-[0-9A-Za-z_-]{20,}`,
			Keywords: []string{"glpat-"},
			Mask:     keepPrefix("glpat-"),
		},
		{
			Name:     "slack-token",
			Pattern:  `\bxox[baprse]-[0-9A-Za-z-]{10,}`,
			Keywords: []string{"xox"},
			Mask:     keepPrefix("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-"),
		},
		{
			Name:     "slack-webhook",
			Pattern:  `hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9+/]{20,})`,
			Keywords: []string{"hooks.slack.com"},
		},
		{
			Name:     "stripe-key",
			Pattern:  `\b(?:sk|rk)_(?:live|test|prod)_[0-9A-Za-z]{10,99}\b`,
			Keywords: []string{"sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_"},
			Mask:     keepPrefix("sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_"),
		},
		{
			Name:     "google-api-key",
			Pattern:  `\bAIza[0-9A-Za-z_-]{35}`,
			Keywords: []string{"aiza"},
			Mask:     keepPrefix("AIza"),
		},
		{
			Name:     "card-number",
			Pattern:  `\b(?:\d[ -]?){12,18}\d\b`,
			Find:     findCards,
			Validate: cardSpan,
			Mask:     maskCard,
		},
		{
			Name:     "url-password",
			Pattern:  `(?i)\b[a-z][a-z0-9+.-]{1,20}://[^:/\s@]+:(?P<secret>[^@/\s]+)@`,
			Keywords: []string{"://"},
		},
		{
			Name:     "auth-header",
			Pattern:  `(?i)\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|digest|token|negotiate|apikey)\s+)?(?P<secret>[^\s"',;]{6,})`,
			Keywords: []string{"authorization"},
		},
		{
			Name:     "bearer-token",
			Pattern:  `(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)`,
			Keywords: []string{"bearer"},
			Validate: tokenLike,
		},
		{
			Name:     "kv-secret",
			Pattern:  `(?i)\b(?:[a-z0-9_.-]*[_.-])?(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|credentials?)["']?\s*[:=]\s*(?P<secret>"[^"\n]{4,}"|'[^'\n]{4,}'|[^\s"'&;,]{4,})`,
			Keywords: []string{"pass", "pwd", "secret", "token", "key", "credential"},
			Mask:     keepQuotes("[REDACTED:kv-secret]"),
		},
		{
			Name:     "email",
			Pattern:  `\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b`,
			Keywords: []string{"@"},
			Mask:     maskEmail,
		},
	}
}

// keepPrefix returns a mask that keeps the first matching well-known prefix
// (identifying the token kind) and replaces the rest with "****".
func keepPrefix(prefixes ...string) func(string) string {
	return func(s string) string {
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return p + "****"
			}
		}
		if len(s) > 4 {
			return s[:4] + "****"
		}
		return "****"
	}
}

// keepQuotes returns a mask that replaces a value but keeps the quotes
// around it, so that masked JSON or key="value" text keeps its shape.
func keepQuotes(mask string) func(string) string {
	return func(s string) string {
		if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
			return s[:1] + mask + s[:1]
		}
		return mask
	}
}

// tokenLike tells an opaque credential from an English word after "Bearer":
// it has a digit or symbol, or is long and mixed-case.
func tokenLike(s string) bool {
	var upper, lower, other bool
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			other = true
		}
	}
	return other || (upper && lower && len(s) >= 16)
}

// maskEmail keeps the first character of the local part and the domain:
// "alice@example.com" -> "a***@example.com".
func maskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return "***"
	}
	return s[:1] + "***" + s[at:]
}
