package ingest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/logs"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Content types of OTLP/HTTP and the Loki push API.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

// mediaType returns the lowercased media type of a Content-Type header.
func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(contentType))
	}
	return mt
}

// DecodeOTLP decodes an OTLP/HTTP logs export request (contentType
// application/x-protobuf or application/json; the body already
// decompressed, see ReadBody).
//
// The stream comes from the resource attributes service.name and
// deployment.environment.name (or deployment.environment); a resource with
// records but no stream is a *StreamError. The level comes from
// severity_number, else severity_text, else info. The body becomes the
// message (a string as is, maps and arrays as JSON). Resource, scope and
// record attributes (record wins) are flattened into Attrs; host.name,
// k8s.pod.name and container.name (k8s.container.name) are lifted.
func DecodeOTLP(body []byte, contentType string, opts Options) ([]logs.Entry, error) {
	var req collogspb.ExportLogsServiceRequest
	switch mediaType(contentType) {
	case ContentTypeProtobuf:
		if err := proto.Unmarshal(body, &req); err != nil {
			return nil, badBody("otlp", "invalid protobuf", err)
		}
	case ContentTypeJSON:
		fixed, err := otlpJSONHexIDs(body)
		if err != nil {
			return nil, err
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, &req); err != nil {
			return nil, badBody("otlp", "invalid JSON", err)
		}
	default:
		return nil, fmt.Errorf("%w: OTLP content-type %q", ErrUnsupportedMediaType, contentType)
	}
	return otlpEntries(&req, opts)
}

func otlpEntries(req *collogspb.ExportLogsServiceRequest, opts Options) ([]logs.Entry, error) {
	now := opts.now()
	var out []logs.Entry
	for i, rl := range req.GetResourceLogs() {
		var service, env, envLegacy string
		base := make(map[string]string)
		for _, kv := range rl.GetResource().GetAttributes() {
			switch kv.GetKey() {
			case "service.name":
				service = anyString(kv.GetValue())
			case "deployment.environment.name":
				env = anyString(kv.GetValue())
			case "deployment.environment":
				envLegacy = anyString(kv.GetValue())
			default:
				flattenAny(kv.GetKey(), kv.GetValue(), base)
			}
		}
		if env == "" {
			env = envLegacy
		}
		for _, sl := range rl.GetScopeLogs() {
			recs := sl.GetLogRecords()
			if len(recs) == 0 {
				continue
			}
			if service == "" || env == "" {
				return nil, &StreamError{Record: fmt.Sprintf("resourceLogs[%d]", i), Service: service, Env: env}
			}
			scope := make(map[string]string, len(base)+4)
			for k, v := range base {
				scope[k] = v
			}
			if n := sl.GetScope().GetName(); n != "" {
				scope["otel.scope.name"] = n
			}
			if v := sl.GetScope().GetVersion(); v != "" {
				scope["otel.scope.version"] = v
			}
			for _, kv := range sl.GetScope().GetAttributes() {
				flattenAny(kv.GetKey(), kv.GetValue(), scope)
			}
			for _, rec := range recs {
				e := logs.Entry{Time: now, Observed: now, Service: service, Env: env, Level: logs.LevelInfo}
				if t := rec.GetTimeUnixNano(); t != 0 {
					e.Time = unixNano(t)
				} else if t := rec.GetObservedTimeUnixNano(); t != 0 {
					e.Time = unixNano(t)
				}
				if l, ok := levelFromSeverityNumber(int64(rec.GetSeverityNumber())); ok {
					e.Level = l
				} else if l, ok := NormalizeLevel(rec.GetSeverityText()); ok {
					e.Level = l
				}
				e.Message = anyString(rec.GetBody())
				attrs := make(map[string]string, len(scope)+len(rec.GetAttributes())+1)
				for k, v := range scope {
					attrs[k] = v
				}
				for _, kv := range rec.GetAttributes() {
					flattenAny(kv.GetKey(), kv.GetValue(), attrs)
				}
				if n := rec.GetEventName(); n != "" {
					attrs["event.name"] = n
				}
				e.Attrs = attrs
				if id := rec.GetTraceId(); len(id) == 16 && !allZero(id) {
					e.TraceID = hex.EncodeToString(id)
					delete(attrs, "trace_id")
				}
				if id := rec.GetSpanId(); len(id) == 8 && !allZero(id) {
					e.SpanID = hex.EncodeToString(id)
					delete(attrs, "span_id")
				}
				liftAttrs(&e)
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func unixNano(t uint64) time.Time {
	if t > math.MaxInt64 {
		t = math.MaxInt64
	}
	return time.Unix(0, int64(t)).UTC()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// anyString renders an AnyValue as text: strings as they are, scalars in
// their usual form, bytes as base64, arrays and maps as JSON.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case nil:
		return ""
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	default:
		b, err := json.Marshal(anyToGo(v, 0))
		if err != nil {
			return ""
		}
		return string(b)
	}
}

// anyToGo converts an AnyValue into plain values for encoding/json.
func anyToGo(v *commonpb.AnyValue, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyToGo(e, depth+1))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = anyToGo(kv.GetValue(), depth+1)
		}
		return out
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		}
		return x.DoubleValue
	case nil:
		return nil
	default:
		return anyString(v)
	}
}

// flattenAny stores v under key, maps flattened as "key.sub".
func flattenAny(key string, v *commonpb.AnyValue, out map[string]string) {
	flattenAnyDepth(key, v, out, 0)
}

func flattenAnyDepth(key string, v *commonpb.AnyValue, out map[string]string, depth int) {
	kvs, ok := v.GetValue().(*commonpb.AnyValue_KvlistValue)
	if !ok || depth > maxDepth {
		out[key] = anyString(v)
		return
	}
	if len(kvs.KvlistValue.GetValues()) == 0 {
		out[key] = "{}"
		return
	}
	for _, kv := range kvs.KvlistValue.GetValues() {
		flattenAnyDepth(key+"."+kv.GetKey(), kv.GetValue(), out, depth+1)
	}
}

// otlpJSONHexIDs rewrites the hex traceId/spanId of OTLP/JSON log records
// into base64, which is what protojson expects for bytes fields.
func otlpJSONHexIDs(body []byte) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, badBody("otlp", "invalid JSON", err)
	}
	if dec.More() {
		return nil, badBody("otlp", "invalid JSON", fmt.Errorf("data after the request object"))
	}
	for _, k := range []string{"resourceLogs", "resource_logs"} {
		if v, ok := root[k]; ok && v != nil {
			if _, isList := v.([]any); !isList {
				// protojson would say "unexpected token" without the field.
				return nil, badBody("otlp", "invalid JSON", fmt.Errorf("%q must be an array", k))
			}
		}
	}
	changed := false
	for _, rl := range jsonList(root, "resourceLogs", "resource_logs") {
		for _, sl := range jsonList(rl, "scopeLogs", "scope_logs") {
			for _, rec := range jsonList(sl, "logRecords", "log_records") {
				for _, k := range []string{"traceId", "trace_id", "spanId", "span_id"} {
					s, ok := rec[k].(string)
					if !ok || s == "" {
						continue
					}
					b, err := hex.DecodeString(s)
					if err != nil {
						return nil, badBody("otlp", k+" is not hex", err)
					}
					rec[k] = base64.StdEncoding.EncodeToString(b)
					changed = true
				}
			}
		}
	}
	if !changed {
		return body, nil
	}
	out, err := json.Marshal(root)
	if err != nil {
		return nil, badBody("otlp", "invalid JSON", err)
	}
	return out, nil
}

// jsonList returns the objects of the array found under the first present
// key of m.
func jsonList(m map[string]any, keys ...string) []map[string]any {
	for _, k := range keys {
		arr, ok := m[k].([]any)
		if !ok {
			continue
		}
		out := make([]map[string]any, 0, len(arr))
		for _, v := range arr {
			if o, ok := v.(map[string]any); ok {
				out = append(out, o)
			}
		}
		return out
	}
	return nil
}
