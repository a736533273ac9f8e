package ingest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/loggate/loggate/gateway/logs"
)

// DecodeLokiPush decodes a Loki push request (POST /loki/api/v1/push):
// application/json, or snappy-compressed logproto.PushRequest protobuf
// (application/x-protobuf). The snappy block's decoded size is checked
// against opts.MaxBodyBytes before decoding (ErrTooLarge).
//
// The stream comes from the labels service_name, service or app and env,
// environment or deployment_environment; a stream without them is a
// *StreamError. The level comes from structured metadata, then labels:
// level, detected_level or severity; default info. Other labels and
// structured metadata (which wins) become attributes; trace_id, pod, host
// and the like are lifted.
func DecodeLokiPush(body []byte, contentType string, opts Options) ([]logs.Entry, error) {
	var streams []lokiStream
	var err error
	switch mediaType(contentType) {
	case ContentTypeJSON:
		streams, err = lokiJSON(body)
	case ContentTypeProtobuf:
		n, derr := snappy.DecodedLen(body)
		if derr != nil {
			return nil, badBody("loki", "invalid snappy block", derr)
		}
		if int64(n) > opts.maxBody() {
			return nil, fmt.Errorf("%w: snappy block decodes to %d bytes, over %d", ErrTooLarge, n, opts.maxBody())
		}
		raw, derr := snappy.Decode(nil, body)
		if derr != nil {
			return nil, badBody("loki", "invalid snappy block", derr)
		}
		streams, err = lokiProto(raw)
	default:
		return nil, fmt.Errorf("%w: Loki content-type %q", ErrUnsupportedMediaType, contentType)
	}
	if err != nil {
		return nil, err
	}
	return lokiEntries(streams, opts)
}

// lokiStream is one decoded stream of a push request, format-independent.
type lokiStream struct {
	labels  map[string]string
	entries []lokiEntry
}

type lokiEntry struct {
	ts   time.Time // zero: arrival time
	line string
	meta map[string]string
}

var (
	lokiServiceLabels = []string{"service_name", "service", "app"}
	lokiEnvLabels     = []string{"env", "environment", "deployment_environment"}
	lokiLevelLabels   = []string{"level", "detected_level", "severity"}
)

func firstLabel(m map[string]string, names []string) (name, value string) {
	for _, n := range names {
		if v := m[n]; v != "" {
			return n, v
		}
	}
	return "", ""
}

func lokiEntries(streams []lokiStream, opts Options) ([]logs.Entry, error) {
	now := opts.now()
	var out []logs.Entry
	for i, st := range streams {
		if len(st.entries) == 0 {
			continue
		}
		svcKey, service := firstLabel(st.labels, lokiServiceLabels)
		envKey, env := firstLabel(st.labels, lokiEnvLabels)
		if service == "" || env == "" {
			return nil, &StreamError{Record: fmt.Sprintf("streams[%d]", i), Service: service, Env: env}
		}
		levKey, labelLevel := firstLabel(st.labels, lokiLevelLabels)
		streamLevel, ok := NormalizeLevel(labelLevel)
		if !ok {
			levKey, streamLevel = "", logs.LevelInfo // an unknown level stays a label
		}
		base := make(map[string]string, len(st.labels))
		for k, v := range st.labels {
			if k != svcKey && k != envKey && k != levKey {
				base[k] = v
			}
		}
		for _, le := range st.entries {
			e := logs.Entry{Time: now, Observed: now, Service: service, Env: env, Level: streamLevel, Message: le.line}
			if !le.ts.IsZero() {
				e.Time = le.ts
			}
			lk, lv := firstLabel(le.meta, lokiLevelLabels)
			if l, ok := NormalizeLevel(lv); ok {
				e.Level = l
			} else {
				lk = ""
			}
			e.Attrs = make(map[string]string, len(base)+len(le.meta))
			for k, v := range base {
				e.Attrs[k] = v
			}
			for k, v := range le.meta {
				if k != lk {
					e.Attrs[k] = v
				}
			}
			liftAttrs(&e)
			out = append(out, e)
		}
	}
	return out, nil
}

// lokiTime parses a nanosecond unix timestamp string.
func lokiTime(s string) (time.Time, error) {
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ns < 0 {
		return time.Time{}, fmt.Errorf("invalid timestamp %q", truncateForError(s))
	}
	if ns == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, ns).UTC(), nil
}

func lokiJSON(body []byte) ([]lokiStream, error) {
	var req struct {
		Streams []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badBody("loki", "invalid JSON", err)
	}
	out := make([]lokiStream, 0, len(req.Streams))
	for i, s := range req.Streams {
		st := lokiStream{labels: s.Stream, entries: make([]lokiEntry, 0, len(s.Values))}
		for j, v := range s.Values {
			where := fmt.Sprintf("streams[%d].values[%d]", i, j)
			if len(v) != 2 && len(v) != 3 {
				return nil, badBody("loki", where+": want [timestamp, line] or [timestamp, line, metadata]", nil)
			}
			var tsStr string
			if err := json.Unmarshal(v[0], &tsStr); err != nil {
				// Some clients send the timestamp as a JSON number.
				var n json.Number
				if err2 := json.Unmarshal(v[0], &n); err2 != nil {
					return nil, badBody("loki", where+": timestamp is not a string", err)
				}
				tsStr = n.String()
			}
			ts, err := lokiTime(tsStr)
			if err != nil {
				return nil, badBody("loki", where, err)
			}
			var line string
			if err := json.Unmarshal(v[1], &line); err != nil {
				return nil, badBody("loki", where+": line is not a string", err)
			}
			var meta map[string]string
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &meta); err != nil {
					return nil, badBody("loki", where+": structured metadata is not an object of strings", err)
				}
			}
			st.entries = append(st.entries, lokiEntry{ts: ts, line: line, meta: meta})
		}
		out = append(out, st)
	}
	return out, nil
}
