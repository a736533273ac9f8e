package gateway

import (
	"strings"
	"testing"
)

func TestParseCertSources(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", `{"sources":[{"name":"a","dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`, ""},
		{"no name", `{"sources":[{"dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`, "has no name"},
		{"twice", `{"sources":[{"name":"a","dns":["a"],"streams":[{"service":"s","env":"e"}]},{"name":"a","dns":["b"],"streams":[{"service":"s","env":"e"}]}]}`, "used twice"},
		{"no identity", `{"sources":[{"name":"a","streams":[{"service":"api","env":"prod"}]}]}`, "names no dns"},
		{"no streams", `{"sources":[{"name":"a","uri":["spiffe://x/y"]}]}`, "lists no streams"},
		{"half stream", `{"sources":[{"name":"a","email":["a@x"],"streams":[{"service":"api"}]}]}`, "without service or env"},
		{"unknown key", `{"sources":[{"name":"a","sans":["x"]}]}`, "unknown field"},
		{"not json", `sources: []`, "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCertSources([]byte(tc.in))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ParseCertSources = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseCertSources(f *testing.F) {
	f.Add([]byte(`{"sources":[{"name":"a","dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`))
	f.Add([]byte(`{"sources":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		srcs, err := ParseCertSources(b)
		if err != nil {
			return
		}
		for _, s := range srcs {
			if s.Name == "" || len(s.Streams) == 0 {
				t.Fatalf("accepted an incomplete mapping %+v", s)
			}
		}
	})
}
