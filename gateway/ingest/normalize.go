package ingest

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/logs"
)

// Mapping names the fields of a generic JSON record. Names are flattened
// paths ("log.message" for {"log":{"message":...}}).
type Mapping struct {
	// TimeField; if empty, the first of "time", "ts", "timestamp", "@timestamp".
	TimeField string
	// LevelField; if empty, the first of "level", "severity", "lvl".
	LevelField string
	// MessageField; if empty, the first of "message", "msg", "log".
	MessageField string
}

// Options configures a decode call.
type Options struct {
	// Now is the arrival time: Entry.Observed, and Entry.Time for records
	// without one. If zero, time.Now().
	Now time.Time
	// Mapping of generic JSON field names (DecodeJSONLines only).
	Mapping Mapping
	// MaxLineBytes caps one NDJSON line or JSON array element. If zero, 64 KiB.
	MaxLineBytes int
	// MaxBodyBytes caps a body decompressed inside a decoder (Loki's snappy
	// block). If zero, 64 MiB.
	MaxBodyBytes int64
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

func (o Options) maxLine() int {
	if o.MaxLineBytes <= 0 {
		return 64 << 10
	}
	return o.MaxLineBytes
}

func (o Options) maxBody() int64 {
	if o.MaxBodyBytes <= 0 {
		return 64 << 20
	}
	return o.MaxBodyBytes
}

var (
	defaultTimeFields    = []string{"time", "ts", "timestamp", "@timestamp"}
	defaultLevelFields   = []string{"level", "severity", "lvl"}
	defaultMessageFields = []string{"message", "msg", "log"}
)

// NormalizeLevel maps a level word (any case) to a logs.Level* constant;
// ok is false for an unknown word (the caller picks a default).
func NormalizeLevel(s string) (level string, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace", "trc", "finest", "finer":
		return logs.LevelTrace, true
	case "debug", "dbg", "debug2", "fine", "verbose", "d":
		return logs.LevelDebug, true
	case "info", "inf", "information", "informational", "notice", "i":
		return logs.LevelInfo, true
	case "warn", "warning", "wrn", "w":
		return logs.LevelWarn, true
	case "error", "err", "eror", "severe", "e":
		return logs.LevelError, true
	case "fatal", "ftl", "critical", "crit", "panic", "dpanic", "emerg", "emergency", "alert", "f":
		return logs.LevelFatal, true
	}
	return "", false
}

// levelFromNumber maps numeric levels: 0-7 syslog severities, 10-60 in
// steps of 10 (pino, bunyan), otherwise OTLP severity numbers (1-24).
func levelFromNumber(n int64) (string, bool) {
	switch {
	case n >= 0 && n <= 2:
		return logs.LevelFatal, true
	case n == 3:
		return logs.LevelError, true
	case n == 4:
		return logs.LevelWarn, true
	case n == 5 || n == 6:
		return logs.LevelInfo, true
	case n == 7:
		return logs.LevelDebug, true
	case n >= 10 && n <= 60 && n%10 == 0:
		return [...]string{logs.LevelTrace, logs.LevelDebug, logs.LevelInfo, logs.LevelWarn, logs.LevelError, logs.LevelFatal}[n/10-1], true
	}
	return levelFromSeverityNumber(n)
}

// levelFromSeverityNumber maps OTLP SeverityNumber ranges.
func levelFromSeverityNumber(n int64) (string, bool) {
	switch {
	case n >= 1 && n <= 4:
		return logs.LevelTrace, true
	case n >= 5 && n <= 8:
		return logs.LevelDebug, true
	case n >= 9 && n <= 12:
		return logs.LevelInfo, true
	case n >= 13 && n <= 16:
		return logs.LevelWarn, true
	case n >= 17 && n <= 20:
		return logs.LevelError, true
	case n >= 21 && n <= 24:
		return logs.LevelFatal, true
	}
	return "", false
}

// maxUnixSeconds bounds plausible timestamps (year 5138) so that a value in
// seconds is told from milli-, micro- and nanoseconds by its magnitude.
const maxUnixSeconds = 1e11

// parseTimeString accepts RFC 3339 (with optional fraction) or a decimal
// unix time in a string.
func parseTimeString(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if c := s[0]; c >= '0' && c <= '9' && len(s) > 4 && s[4] != '-' {
		return parseTimeNumber(s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// parseTimeNumber parses a JSON number as unix seconds (fractional allowed),
// milliseconds, microseconds or nanoseconds, chosen by magnitude.
func parseTimeNumber(s string) (time.Time, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case i < 0:
			return time.Time{}, false
		case i < maxUnixSeconds:
			return time.Unix(i, 0).UTC(), true
		case i < maxUnixSeconds*1e3:
			return time.UnixMilli(i).UTC(), true
		case i < maxUnixSeconds*1e6:
			return time.UnixMicro(i).UTC(), true
		default:
			return time.Unix(0, i).UTC(), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f >= math.MaxInt64 {
		return time.Time{}, false
	}
	for _, scale := range []float64{1, 1e3, 1e6} {
		if f < maxUnixSeconds*scale {
			sec := f / scale
			whole := math.Floor(sec)
			// float64 carries ~16 digits: keep microseconds, drop noise.
			micros := math.Round((sec - whole) * 1e6)
			return time.Unix(int64(whole), int64(micros)*1e3).UTC(), true
		}
	}
	return time.Unix(0, int64(f)).UTC(), true
}

// liftTarget tells which Entry field a well-known attribute key fills.
type liftTarget int8

const (
	liftNone liftTarget = iota
	liftTrace
	liftSpan
	liftHost
	liftPod
	liftContainer
)

func liftKey(k string) liftTarget {
	switch k {
	case "trace_id", "traceid", "traceId", "trace.id":
		return liftTrace
	case "span_id", "spanid", "spanId", "span.id":
		return liftSpan
	case "host", "hostname", "host.name", "kubernetes.host":
		return liftHost
	case "pod", "k8s.pod.name", "kubernetes.pod_name", "k8s_pod_name", "pod_name":
		return liftPod
	case "container", "container.name", "k8s.container.name", "kubernetes.container_name", "container_name":
		return liftContainer
	}
	return liftNone
}

// lift stores v in the Entry field for t if that field is still empty.
func lift(e *logs.Entry, t liftTarget, v string) bool {
	var dst *string
	switch t {
	case liftTrace:
		dst = &e.TraceID
	case liftSpan:
		dst = &e.SpanID
	case liftHost:
		dst = &e.Host
	case liftPod:
		dst = &e.Pod
	case liftContainer:
		dst = &e.Container
	default:
		return false
	}
	if *dst != "" || v == "" {
		return false
	}
	*dst = v
	return true
}

// liftOrder lists well-known keys by precedence, for maps (whose order is
// random) in the OTLP and Loki decoders.
var liftOrder = []string{
	"trace_id", "traceid", "traceId", "trace.id",
	"span_id", "spanid", "spanId", "span.id",
	"host.name", "host", "hostname", "kubernetes.host",
	"k8s.pod.name", "pod", "kubernetes.pod_name", "k8s_pod_name", "pod_name",
	"k8s.container.name", "container.name", "container", "kubernetes.container_name", "container_name",
}

// liftAttrs moves well-known keys of e.Attrs into their Entry fields.
func liftAttrs(e *logs.Entry) {
	if len(e.Attrs) == 0 {
		e.Attrs = nil
		return
	}
	for _, k := range liftOrder {
		if v, ok := e.Attrs[k]; ok && lift(e, liftKey(k), v) {
			delete(e.Attrs, k)
		}
	}
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	}
}
