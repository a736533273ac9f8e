package main

import (
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/logs"
)

func TestParseRetention(t *testing.T) {
	got, err := parseRetention("*=5000//, prod=50000/64MiB/2h, staging=//30m")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]logs.Retention{
		"":        {MaxEntries: 5000},
		"prod":    {MaxEntries: 50000, MaxBytes: 64 << 20, MaxAge: 2 * time.Hour},
		"staging": {MaxAge: 30 * time.Minute},
	}
	for env, w := range want {
		if got[env] != w {
			t.Errorf("%q: got %+v, want %+v", env, got[env], w)
		}
	}
	for _, bad := range []string{"prod", "prod=1/2", "prod=x//", "prod=/10XB/", "prod=//-1h", "=1//"} {
		if _, err := parseRetention(bad); err == nil {
			t.Errorf("parseRetention(%q) accepted", bad)
		}
	}
}
