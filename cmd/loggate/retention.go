package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/logs"
)

// parseRetention reads --log-retention: comma-separated
// ENV=ENTRIES/BYTES/AGE items, where ENV "*" is the default and any part
// may be empty to keep the built-in default (10000 entries, 16MiB, 24h).
// Example: "*=10000/16MiB/24h,prod=50000/64MiB/2h".
func parseRetention(s string) (map[string]logs.Retention, error) {
	out := map[string]logs.Retention{"": {}}
	for _, item := range splitList(s) {
		env, spec, ok := strings.Cut(item, "=")
		parts := strings.Split(spec, "/")
		if !ok || env == "" || len(parts) != 3 {
			return nil, exitcode.Usagef("--log-retention: %q is not ENV=ENTRIES/BYTES/AGE", item)
		}
		var r logs.Retention
		var err error
		if parts[0] != "" {
			if r.MaxEntries, err = strconv.Atoi(parts[0]); err != nil || r.MaxEntries < 1 {
				return nil, exitcode.Usagef("--log-retention %s: entries %q is not a positive integer", env, parts[0])
			}
		}
		if parts[1] != "" {
			if r.MaxBytes, err = parseBytes(parts[1]); err != nil {
				return nil, exitcode.Usagef("--log-retention %s: %v", env, err)
			}
		}
		if parts[2] != "" {
			if r.MaxAge, err = time.ParseDuration(parts[2]); err != nil || r.MaxAge <= 0 {
				return nil, exitcode.Usagef("--log-retention %s: age %q is not a positive duration", env, parts[2])
			}
		}
		if env == "*" {
			env = ""
		}
		out[env] = r
	}
	return out, nil
}

// parseBytes reads sizes like 512, 64KiB, 16MiB, 1GiB.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("size %q is not a positive number of bytes (units KiB, MiB, GiB)", s)
	}
	return n * mult, nil
}
