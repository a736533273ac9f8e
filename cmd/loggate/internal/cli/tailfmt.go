package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/loggate/loggate/gateway/api"
)

// ANSI colours for levels; only written when stdout is a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiBold   = "\x1b[1;31m"
	ansiYellow = "\x1b[33m"
	ansiGreen  = "\x1b[32m"
	ansiGray   = "\x1b[90m"
)

func levelColour(level string) string {
	switch level {
	case "fatal":
		return ansiBold
	case "error":
		return ansiRed
	case "warn":
		return ansiYellow
	case "info":
		return ansiGreen
	default:
		return ansiGray
	}
}

// formatEntry renders one entry as a text line:
//
//	15:04:05.000 ERROR payment failed order=ord_1 pod=checkout-7d9f8
//
// Everything that came from the log is escaped so it cannot drive the
// terminal (no escape sequences, no carriage returns).
func formatEntry(e api.Entry, colour bool) string {
	var b strings.Builder
	ts := e.Time.Local().Format("15:04:05.000")
	lvl := strings.ToUpper(e.Level)
	if lvl == "" {
		lvl = "-"
	}
	if colour {
		fmt.Fprintf(&b, "%s%s%s %s%-5s%s ", ansiDim, ts, ansiReset, levelColour(e.Level), safeText(lvl), ansiReset)
	} else {
		fmt.Fprintf(&b, "%s %-5s ", ts, safeText(lvl))
	}
	b.WriteString(safeText(e.Message))
	var kv []string
	for k, v := range e.Attrs {
		kv = append(kv, safeText(k)+"="+quoteIfNeeded(safeText(v)))
	}
	sort.Strings(kv)
	for _, extra := range []struct{ k, v string }{{"pod", e.Pod}, {"host", e.Host}, {"trace_id", e.TraceID}} {
		if extra.v != "" {
			kv = append(kv, extra.k+"="+quoteIfNeeded(safeText(extra.v)))
		}
	}
	if e.Truncated {
		kv = append(kv, "truncated=true")
	}
	if len(kv) > 0 {
		b.WriteByte(' ')
		if colour {
			b.WriteString(ansiDim)
		}
		b.WriteString(strings.Join(kv, " "))
		if colour {
			b.WriteString(ansiReset)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// safeText makes log text inert on a terminal: control characters (C0, DEL,
// C1, including ESC and CR) and invalid UTF-8 are shown escaped; a newline
// inside a message becomes "\n" so one entry stays one line.
func safeText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteByte('\t')
		case r == '\n':
			b.WriteString(`\n`)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func quoteIfNeeded(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\"=") {
		return strconv.Quote(v)
	}
	return v
}

// escapeC1 rewrites C1 control characters (U+0080..U+009F) and the Unicode
// line separators in a JSON text as \u escapes. encoding/json escapes C0
// already; C1 passes through raw and some terminals act on it.
func escapeC1(raw json.RawMessage) json.RawMessage {
	if !bytes.ContainsAny(raw, "\u0080\u0081\u0082\u0083\u0084\u0085\u0086\u0087\u0088\u0089\u008a\u008b\u008c\u008d\u008e\u008f\u0090\u0091\u0092\u0093\u0094\u0095\u0096\u0097\u0098\u0099\u009a\u009b\u009c\u009d\u009e\u009f\u2028\u2029") {
		return raw
	}
	var b bytes.Buffer
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.Write(raw[i : i+size])
		}
		i += size
	}
	return b.Bytes()
}
