package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loggate/loggate/cmd/loggate/internal/doctor"
)

// TestSourceListener: with --source-listen, the real binary serves ingest
// (NDJSON, OTLP/HTTP, Loki push) on that port only: the main listener
// answers 404 for the ingest routes, and the source listener 404 for
// people's routes and the UI, while health answers on both.
func TestSourceListener(t *testing.T) {
	main, sources := freeAddr(t), freeAddr(t)
	const token = "lgs_crash_test_token"                                                // startChild's
	startChild(t, main, filepath.Join(t.TempDir(), "data"), "--source-listen", sources) // killed at cleanup

	do := func(method, url, contentType, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	ingest := []struct{ path, contentType, body string }{
		{"/api/v1/ingest?service=checkout&env=staging", "application/x-ndjson", `{"message":"on the source port"}` + "\n"},
		{"/v1/logs", "application/json", `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}},{"key":"deployment.environment","value":{"stringValue":"staging"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"otlp on the source port"}}]}]}]}`},
		{"/loki/api/v1/push", "application/json", `{"streams":[{"stream":{"service":"checkout","env":"staging"},"values":[["1700000000000000000","loki on the source port"]]}]}`},
	}
	for _, in := range ingest {
		if code, msg := do("POST", "http://"+sources+in.path, in.contentType, in.body); code/100 != 2 {
			t.Errorf("POST %s on the source listener: %d %s, want 2xx", in.path, code, msg)
		}
		if code, msg := do("POST", "http://"+main+in.path, in.contentType, in.body); code != http.StatusNotFound {
			t.Errorf("POST %s on the main listener: %d %s, want 404", in.path, code, msg)
		}
	}
	for _, path := range []string{"/api/v1/me", "/api/v1/streams", "/api/v1/audit", "/", "/login", "/metrics"} {
		if code, _ := do("GET", "http://"+sources+path, "", ""); code != http.StatusNotFound {
			t.Errorf("GET %s on the source listener: %d, want 404", path, code)
		}
	}
	if code, _ := do("GET", "http://"+main+"/api/v1/me", "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/me on the main listener with a source token: %d, want 401 (the route is there)", code)
	}
	for _, addr := range []string{main, sources} {
		if code, _ := do("GET", "http://"+addr+"/healthz", "", ""); code != http.StatusOK {
			t.Errorf("GET /healthz on %s: %d, want 200", addr, code)
		}
	}
}

// TestDoctorSourceListener: doctor fails an unusable --source-listen and
// warns when the source port takes tokens only.
func TestDoctorSourceListener(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    serveConfig
		want doctor.Status
	}{
		{"with mTLS", serveConfig{Listen: "0.0.0.0:8443", SourceListen: "0.0.0.0:8444", SourceCAFile: "ca.pem"}, doctor.OK},
		{"tokens only", serveConfig{Listen: "0.0.0.0:8443", SourceListen: "0.0.0.0:8444"}, doctor.Warn},
		{"no port", serveConfig{Listen: "0.0.0.0:8443", SourceListen: "0.0.0.0"}, doctor.Fail},
		{"same address", serveConfig{Listen: "0.0.0.0:8443", SourceListen: "0.0.0.0:8443", SourceCAFile: "ca.pem"}, doctor.Fail},
	} {
		if r := sourceListenCheck(&tc.c); r.Status != tc.want || r.Status != doctor.OK && r.Fix == "" {
			t.Errorf("%s: %v %q (fix %q), want %v with a fix", tc.name, r.Status, r.Detail, r.Fix, tc.want)
		}
	}
}
