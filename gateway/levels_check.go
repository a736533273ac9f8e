package gateway

import (
	"fmt"
	"sort"
	"strings"

	"github.com/loggate/loggate/gateway/logs"
)

// Limits of a request's level scope.
const (
	maxScopeAttrs   = 8
	maxScopeKeyLen  = 64
	maxScopeValLen  = 128
	raisedLevelHelp = `level must be "debug" or "trace" (or empty to keep the services' own level)`
)

// checkLevel validates a request's level and scope. Only levels below
// info are accepted: a grant raises verbosity, it never lowers it. A scope
// without a level is refused, since it would mean nothing.
func checkLevel(level string, scope map[string]string) (string, map[string]string, error) {
	level = strings.ToLower(strings.TrimSpace(level))
	if level == "" {
		if len(scope) > 0 {
			return "", nil, errBadRequest(`"scope" needs a "level"`)
		}
		return "", nil, nil
	}
	if r := logs.LevelRank(level); r == 0 || r >= logs.LevelRank(logs.LevelInfo) {
		return "", nil, errBadRequest(raisedLevelHelp)
	}
	if len(scope) == 0 {
		return level, nil, nil
	}
	if len(scope) > maxScopeAttrs {
		return "", nil, errBadRequest(fmt.Sprintf(`"scope" has %d attributes; at most %d`, len(scope), maxScopeAttrs))
	}
	for k, v := range scope {
		if k == "" || len(k) > maxScopeKeyLen || !printable(k) || strings.ContainsAny(k, "=,") {
			return "", nil, errBadRequest(fmt.Sprintf(`"scope" key %q must be 1 to %d printable characters without "=" or ","`, truncate(k, 40), maxScopeKeyLen))
		}
		if len(v) > maxScopeValLen || !printable(v) {
			return "", nil, errBadRequest(fmt.Sprintf(`"scope" value of %q must be at most %d printable characters`, truncate(k, 40), maxScopeValLen))
		}
	}
	return level, scope, nil
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c <= 0x9f || c == 0xfffd {
			return false
		}
	}
	return true
}

// scopeKey renders a scope canonically ("" for the whole service,
// "k1=v1,k2=v2" sorted by key) so equal scopes share one level state.
func scopeKey(scope map[string]string) string {
	if len(scope) == 0 {
		return ""
	}
	keys := make([]string, 0, len(scope))
	for k := range scope {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(scope[k])
	}
	return b.String()
}
