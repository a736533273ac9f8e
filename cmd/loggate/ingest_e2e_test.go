package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// openTail requests staging access as alice and opens the tail.
func openTail(t *testing.T, g *gatewayT, env string) *websocket.Conn {
	t.Helper()
	alice := g.token("alice")
	if env != "staging" {
		t.Fatalf("openTail only does auto-approved staging")
	}
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": env,
		"duration": "10m", "reason": "INC-7 ingest test"}, &req); code != 201 || req.Grant == nil {
		t.Fatalf("request: %d %+v", code, req)
	}
	ws := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + req.Grant.ID + "/tail"
	conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + alice}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var sub map[string]any
	if err := conn.ReadJSON(&sub); err != nil || sub["type"] != "subscribed" {
		t.Fatalf("subscribed: %v %v", sub, err)
	}
	return conn
}

// readEntries reads tail messages until n entries arrived.
func readEntries(t *testing.T, conn *websocket.Conn, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(out) < n {
		var m struct {
			Type    string           `json:"type"`
			Entries []map[string]any `json:"entries"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("after %d entries: %v", len(out), err)
		}
		out = append(out, m.Entries...)
	}
	return out
}

func TestIngestOTLPFromSDKReachesViewer(t *testing.T) {
	g := startGateway(t)
	conn := openTail(t, g, "staging")
	src := g.r.SourceTokens["checkout/staging"]
	ctx := context.Background()

	for _, compress := range []bool{false, true} {
		opts := []otlploghttp.Option{otlploghttp.WithEndpointURL(g.url + "/v1/logs"), otlploghttp.WithInsecure(),
			otlploghttp.WithHeaders(map[string]string{"Authorization": "Bearer " + src})}
		if compress {
			opts = append(opts, otlploghttp.WithCompression(otlploghttp.GzipCompression))
		}
		exp, err := otlploghttp.New(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		res := resource.NewSchemaless(attribute.String("service.name", "checkout"),
			attribute.String("deployment.environment.name", "staging"))
		provider := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
		var rec otellog.Record
		rec.SetSeverity(otellog.SeverityError)
		rec.SetBody(attribute.StringValue(fmt.Sprintf("otlp payment failed gzip=%v password=hunter2hunter2", compress)))
		provider.Logger("test").Emit(ctx, rec)
		if err := provider.Shutdown(ctx); err != nil {
			t.Fatalf("exporter: %v", err)
		}
		got := readEntries(t, conn, 1)
		msg, _ := got[0]["message"].(string)
		if got[0]["level"] != "error" || !strings.Contains(msg, "otlp payment failed") || strings.Contains(msg, "hunter2") {
			t.Errorf("OTLP entry (gzip=%v) = %v", compress, got[0])
		}
	}

	// A record for a stream the token may not write: 403, nothing kept.
	body := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}},
	  {"key":"deployment.environment.name","value":{"stringValue":"staging"}}]},
	  "scopeLogs":[{"logRecords":[{"body":{"stringValue":"nope"}}]}]}]}`
	if code := post(t, g.url+"/v1/logs", src, "application/json", "", []byte(body)); code != http.StatusForbidden {
		t.Errorf("OTLP for another service: %d, want 403", code)
	}
}

func TestIngestLokiAndNDJSONErrors(t *testing.T) {
	g := startGateway(t)
	conn := openTail(t, g, "staging")
	src := g.r.SourceTokens["checkout/staging"]

	ts := fmt.Sprint(time.Now().UnixNano())
	loki := `{"streams":[{"stream":{"service_name":"checkout","env":"staging","level":"warn"},"values":[["` + ts + `","loki line one"],["` + ts + `","loki line two"]]}]}`
	if code := post(t, g.url+"/loki/api/v1/push", src, "application/json", "", []byte(loki)); code != http.StatusNoContent {
		t.Fatalf("loki push: %d, want 204", code)
	}
	got := readEntries(t, conn, 2)
	if got[0]["message"] != "loki line one" || got[1]["message"] != "loki line two" || got[0]["level"] != "warn" {
		t.Errorf("loki entries = %v", got)
	}

	ndjson := func(service, env, tok, body string) (int, map[string]string) {
		req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest?service="+service+"&env="+env, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		return jsonAnswer(t, resp, err)
	}
	cases := []struct {
		name, service, env, tok, body string
		want                          int
		msg                           string
	}{
		{"no token", "checkout", "staging", "", `{"message":"x"}`, 401, ""},
		{"bad token", "checkout", "staging", "lgs_nope", `{"message":"x"}`, 401, ""},
		{"other stream", "checkout", "prod", src, `{"message":"x"}`, 403, ""},
		{"bad third line", "checkout", "staging", src, "{\"message\":\"a\"}\n{\"message\":\"b\"}\n{nope\n", 400, "line 3"},
		{"missing message", "checkout", "staging", src, "{\"message\":\"a\"}\n{\"level\":\"warn\"}\n", 400, "line 2"},
		{"no stream", "", "", src, `{"message":"x"}`, 400, "service"},
	}
	for _, c := range cases {
		code, out := ndjson(c.service, c.env, c.tok, c.body)
		if code != c.want || !strings.Contains(out["error"], c.msg) {
			t.Errorf("%s: %d %q, want %d mentioning %q", c.name, code, out["error"], c.want, c.msg)
		}
	}

	// Oversize after decompression: a small gzip body that inflates past the limit.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	line := []byte(`{"message":"` + strings.Repeat("a", 1000) + `"}` + "\n")
	for range 10000 { // ~10 MB inflated, over the 8 MiB default
		zw.Write(line)
	}
	zw.Close()
	if code := post(t, g.url+"/api/v1/ingest?service=checkout&env=staging", src, "application/x-ndjson", "gzip", zb.Bytes()); code != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip bomb: %d, want 413", code)
	}

	// Nothing from the rejected bodies reached the viewer: the next entry is ours.
	if code, _ := ndjson("checkout", "staging", src, `{"message":"after the errors"}`); code != 200 {
		t.Fatalf("good ingest: %d", code)
	}
	if got := readEntries(t, conn, 1); got[0]["message"] != "after the errors" {
		t.Errorf("a rejected body leaked an entry: %v", got[0])
	}
}

func post(t *testing.T, url, tok, ct, enc string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestIngestOTLPProtobufErrorIsStatus: a refused protobuf export is
// answered with a google.rpc.Status body, as the OTLP/HTTP spec asks.
func TestIngestOTLPProtobufErrorIsStatus(t *testing.T) {
	g := startGateway(t)
	src := g.r.SourceTokens["checkout/staging"]
	req, _ := http.NewRequest("POST", g.url+"/v1/logs", bytes.NewReader([]byte{0x0a, 0xff, 0xff}))
	req.Header.Set("Authorization", "Bearer "+src)
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st rpcstatus.Status
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("status %d, content type %q; want 400 protobuf", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := proto.Unmarshal(body, &st); err != nil || st.Code != 3 || st.Message == "" {
		t.Errorf("body = %+v (%v), want google.rpc.Status INVALID_ARGUMENT with a message", &st, err)
	}
}
