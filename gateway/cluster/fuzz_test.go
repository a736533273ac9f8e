package cluster

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

func FuzzStreamName(f *testing.F) {
	for _, s := range [][2]string{{"checkout", "prod"}, {"a/b", "c d"}, {"%2F", ""}, {"ü", "\x00"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, svc, env string) {
		s := logs.Stream{Service: svc, Env: env}
		got, ok := parseStreamName(streamName(s))
		if svc != "" && (!ok || got != s) {
			t.Fatalf("round trip of %q = %q, %v", s, got, ok)
		}
		parseStreamName(svc + "/" + env) // arbitrary input must not panic
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(audit.EncodeCursor(42))
	f.Add("")
	f.Add("YzEuLTE")
	f.Fuzz(func(t *testing.T, c string) {
		n, err := audit.DecodeCursor(c)
		if err != nil {
			return
		}
		if n <= 0 {
			t.Fatalf("cursor %q decoded to %d", c, n)
		}
		if back, err := audit.DecodeCursor(audit.EncodeCursor(n)); err != nil || back != n {
			t.Fatalf("re-encoded cursor for %d decodes to %d, %v", n, back, err)
		}
	})
}

func FuzzDecodeFeedMessage(f *testing.F) {
	f.Add("1-0", `{"seq":0,"time":"2026-01-01T00:00:00Z","service":"x","env":"y","level":"info","message":"m"}`)
	f.Add("x-1", `{}`)
	f.Add("9223372036854775807-0", `null`)
	f.Fuzz(func(t *testing.T, id, raw string) {
		e, err := decodeMessage(checkout, redis.XMessage{ID: id, Values: map[string]any{"e": raw}})
		if err == nil && (e.Service != checkout.Service || e.Env != checkout.Env || e.Seq <= 0) {
			t.Fatalf("decoded entry names stream %s/%s", e.Service, e.Env)
		}
	})
}
