package redact

import (
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/logs"
)

// FuzzRedact checks that arbitrary text never panics the redactor and that
// a known secret inserted between spaces never keeps an 8-character run
// visible, whatever surrounds it.
func FuzzRedact(f *testing.F) {
	f.Add("hello", "world", uint8(0))
	f.Add("password=", "x", uint8(3))
	f.Add("Authorization: Bearer", "", uint8(8))
	f.Add("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", uint8(9))
	f.Add("4242 4242", "4242", uint8(10))
	f.Add("postgres://u:", "@h", uint8(1))
	f.Add("a@b.c", "\x00\xff", uint8(5))
	r, err := New(Config{MaxScanBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, before, after string, which uint8) {
		ks := knownSecrets[int(which)%len(knownSecrets)]
		in := before + " " + ks.secret + " " + after
		if len(in) > 4000 {
			return // keep the secret inside the scanned window
		}
		got, _ := r.String(in)
		if w := survivingRun(got, ks.secret, ks.keep); w != "" && !strings.Contains(before+after, w) {
			t.Errorf("String(%q) = %q keeps %q of the %s secret", in, got, w, ks.rule)
		}
		e := logs.Entry{Message: before, Attrs: map[string]string{after: in, before: after}}
		r.Entry(&e)
		if e.Attrs == nil {
			t.Fatal("attrs lost")
		}
	})
}

var benchLines = []string{
	`GET /api/v1/orders/81231 200 in 12.4ms user_id=42 region=eu-west-1 cache=hit`,
	`payment accepted for order 1000231 amount=12.00 currency=EUR attempt=1`,
	`connection pool stats: open=12 idle=8 wait_count=0 wait_duration=0s max_lifetime=30m0s`,
	`request failed token=ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d retrying`,
}

func BenchmarkString(b *testing.B) {
	r := newDefault(b)
	for _, l := range benchLines {
		name := l[:12]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(l)))
			for b.Loop() {
				r.String(l)
			}
		})
	}
}
