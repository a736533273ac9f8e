package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/loggate/loggate/gateway/logs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

type captured struct {
	contentType, contentEncoding string
	body                         []byte
}

// exportWithSDK emits records through the real OpenTelemetry Go SDK and
// OTLP/HTTP exporter and returns the requests the exporter sent.
func exportWithSDK(t *testing.T, opts ...otlploghttp.Option) []captured {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read: %v", err)
		}
		mu.Lock()
		got = append(got, captured{r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), b})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, append([]otlploghttp.Option{
		otlploghttp.WithEndpointURL(srv.URL + "/v1/logs"), otlploghttp.WithInsecure(),
	}, opts...)...)
	if err != nil {
		t.Fatalf("otlploghttp.New: %v", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("deployment.environment.name", "prod"),
		attribute.String("host.name", "node-7"),
	)
	provider := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	logger := provider.Logger("checkout/payments")

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c},
		SpanID:     trace.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
		TraceFlags: trace.FlagsSampled,
	})
	var rec otellog.Record
	rec.SetTimestamp(time.Unix(1772273472, 345678901))
	rec.SetSeverity(otellog.SeverityWarn)
	rec.SetSeverityText("WARN")
	rec.SetBody(attribute.StringValue("payment slow"))
	rec.AddAttributes(
		attribute.String("http.method", "POST"),
		attribute.Int("http.status", 504),
		attribute.Map("db", attribute.String("system", "postgres")),
		attribute.String("k8s.pod.name", "checkout-5d9f-abc"),
	)
	logger.Emit(trace.ContextWithSpanContext(ctx, sc), rec)

	var rec2 otellog.Record
	rec2.SetTimestamp(time.Unix(1772273473, 0))
	rec2.SetSeverity(otellog.SeverityFatal2)
	rec2.SetBody(attribute.MapValue(attribute.String("event", "crash"), attribute.Int("code", 3)))
	logger.Emit(ctx, rec2)

	if err := provider.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
	if err := provider.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("exporter sent nothing")
	}
	return got
}

func TestDecodeOTLPFromSDK(t *testing.T) {
	want := []logs.Entry{
		{
			Time: time.Unix(1772273472, 345678901).UTC(), Observed: testNow, Service: "checkout", Env: "prod",
			Level: "warn", Message: "payment slow",
			Attrs: map[string]string{
				"otel.scope.name": "checkout/payments", "http.method": "POST", "http.status": "504", "db.system": "postgres",
			},
			TraceID: "5b8efff798038103d269b633813fc60c", SpanID: "eee19b7ec3c1b174", Host: "node-7", Pod: "checkout-5d9f-abc",
		},
		{
			Time: time.Unix(1772273473, 0).UTC(), Observed: testNow, Service: "checkout", Env: "prod",
			Level: "fatal", Message: `{"code":3,"event":"crash"}`,
			Attrs: map[string]string{"otel.scope.name": "checkout/payments"}, Host: "node-7",
		},
	}
	tests := []struct {
		name string
		opts []otlploghttp.Option
		enc  string
	}{
		{name: "protobuf"},
		{name: "protobuf gzip", opts: []otlploghttp.Option{otlploghttp.WithCompression(otlploghttp.GzipCompression)}, enc: "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := exportWithSDK(t, tt.opts...)
			var got []logs.Entry
			for _, r := range reqs {
				if r.contentEncoding != tt.enc {
					t.Errorf("Content-Encoding = %q, want %q", r.contentEncoding, tt.enc)
				}
				body, err := ReadBody(bytes.NewReader(r.body), r.contentEncoding, 1<<20)
				if err != nil {
					t.Fatalf("ReadBody: %v", err)
				}
				entries, err := DecodeOTLP(body, r.contentType, Options{Now: testNow})
				if err != nil {
					t.Fatalf("DecodeOTLP: %v", err)
				}
				got = append(got, entries...)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeOTLPJSON(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "otlp_logs.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOTLP(body, "application/json; charset=utf-8", Options{Now: testNow})
	if err != nil {
		t.Fatalf("DecodeOTLP: %v", err)
	}
	scope := func(extra map[string]string) map[string]string {
		m := map[string]string{"otel.scope.name": "checkout/payments", "otel.scope.version": "1.2.0"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	base := logs.Entry{Observed: testNow, Service: "checkout", Env: "prod", Host: "node-7", Pod: "checkout-5d9f-abc", Container: "app"}
	e1, e2, e3 := base, base, base
	e1.Time, e1.Level, e1.Message = time.Unix(0, 1772273472345678901).UTC(), "error", "payment declined"
	e1.TraceID, e1.SpanID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	e1.Attrs = scope(map[string]string{"http.status": "402", "retry": "false", "ratio": "0.25", "db.system": "postgres", "tags": `["a",2]`})
	e2.Time, e2.Level, e2.Message = time.Unix(0, 1772273473000000000).UTC(), "warn", `{"event":"slow","ms":1200}`
	e2.Attrs = scope(nil)
	e3.Time, e3.Level, e3.Message = time.Unix(0, 1772273474000000000).UTC(), "debug", "cache miss"
	e3.Attrs = scope(nil)
	if diff := cmp.Diff([]logs.Entry{e1, e2, e3}, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestDecodeOTLPErrors(t *testing.T) {
	noStream := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a"}}]}]}]}`
	tests := []struct {
		name, body, contentType string
		wantStatus              int
		wantStream              bool
	}{
		{name: "no env", body: noStream, contentType: "application/json", wantStatus: 400, wantStream: true},
		{name: "bad hex trace id", body: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}`, contentType: "application/json", wantStatus: 400},
		{name: "not json", body: `{"resourceLogs":`, contentType: "application/json", wantStatus: 400},
		{name: "bad protobuf", body: "\xff\xff\xff", contentType: "application/x-protobuf", wantStatus: 400},
		{name: "wrong type", body: `{"resourceLogs":"x"}`, contentType: "application/json", wantStatus: 400},
		{name: "unsupported content type", body: "x", contentType: "text/plain", wantStatus: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeOTLP([]byte(tt.body), tt.contentType, Options{Now: testNow})
			if err == nil {
				t.Fatal("DecodeOTLP succeeded, want error")
			}
			if got := HTTPStatus(err); got != tt.wantStatus {
				t.Errorf("HTTPStatus(%v) = %d, want %d", err, got, tt.wantStatus)
			}
			var se *StreamError
			if errors.As(err, &se) != tt.wantStream {
				t.Errorf("error %v: StreamError %v, want %v", err, !tt.wantStream, tt.wantStream)
			}
		})
	}
}

func FuzzDecodeOTLP(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "otlp_logs.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden, true)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, false)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"00"}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := ContentTypeProtobuf
		if isJSON {
			ct = ContentTypeJSON
		}
		entries, err := DecodeOTLP(body, ct, Options{Now: testNow})
		if err != nil {
			if !IsClientError(err) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		for _, e := range entries {
			if e.Service == "" || e.Env == "" || logs.LevelRank(e.Level) == 0 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
