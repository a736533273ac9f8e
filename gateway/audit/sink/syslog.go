package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// Syslog structured data: SD-ID "loggate@32473" uses the private enterprise
// number RFC 5612 reserves for documentation; receivers key on the name.
const (
	syslogSDID      = "loggate@32473"
	defaultFacility = 13 // "log audit" (RFC 5424 table 1)
)

// SyslogConfig configures NewSyslog.
type SyslogConfig struct {
	// Network is "tcp" or "tls" (required).
	Network string
	// Addr is the receiver's host:port (required; 6514 is the TLS port).
	Addr string
	// TLS configures "tls". If nil, the system roots and Addr's host name.
	TLS *tls.Config
	// Hostname is the message's HOSTNAME field. If empty, "-".
	Hostname string
	// AppName is the APP-NAME field. If empty, "loggate".
	AppName string
	// Facility is the syslog facility (0..23). If zero, 13 (log audit).
	Facility int
	// Timeout bounds dialing and each batch's write. If zero, 10s.
	Timeout time.Duration
}

// Syslog sends each event as an RFC 5424 message with octet-counting framing
// (RFC 6587 3.4.1, required by RFC 5425 for TLS): "MSG-LEN SP SYSLOG-MSG".
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - ACTION [loggate@32473 id=".." seq=".." outcome=".."] BOM<NDJSON line>
//
// Severity is notice for success, warning for denied, failure and
// interrupted, error for error. The message is the event's NDJSON line
// without the newline, so the receiver can check the hash chain. Syslog has
// no acknowledgements: a message is delivered once written to the socket.
// Before each batch the connection is probed, so a receiver that closed it
// is redialled rather than written into the void.
type Syslog struct {
	cfg  SyslogConfig
	conn net.Conn // owned by the Runner goroutine that calls Deliver
	buf  bytes.Buffer
}

// NewSyslog validates cfg. It does not dial: the first Deliver does.
func NewSyslog(cfg SyslogConfig) (*Syslog, error) {
	if cfg.Network != "tcp" && cfg.Network != "tls" {
		return nil, fmt.Errorf("audit syslog sink: network %q, want tcp or tls", cfg.Network)
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("audit syslog sink: address %q: %w", cfg.Addr, err)
	}
	if cfg.Facility < 0 || cfg.Facility > 23 {
		return nil, fmt.Errorf("audit syslog sink: facility %d outside 0..23", cfg.Facility)
	}
	if cfg.Facility == 0 {
		cfg.Facility = defaultFacility
	}
	cfg.Hostname = headerField(cfg.Hostname, 255)
	if cfg.AppName == "" {
		cfg.AppName = "loggate"
	}
	cfg.AppName = headerField(cfg.AppName, 48)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Syslog{cfg: cfg}, nil
}

// Deliver writes every record's frame in one write.
func (s *Syslog) Deliver(ctx context.Context, recs []audit.Record) error {
	s.buf.Reset()
	for _, r := range recs {
		ev, err := r.Event()
		if err != nil {
			return fmt.Errorf("syslog seq %d: %w", r.Seq, err)
		}
		appendFrame(&s.buf, s.cfg.Facility, s.cfg.Hostname, s.cfg.AppName, r, ev.Outcome)
	}
	return s.send(ctx)
}

// DeliverCheckpoint writes cp as one message with MSGID audit.checkpoint,
// severity informational, the structured data naming its size, origin and
// CheckpointID, and CheckpointJSON(cp) as the message.
func (s *Syslog) DeliverCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	s.buf.Reset()
	appendCheckpointFrame(&s.buf, s.cfg.Facility, s.cfg.Hostname, s.cfg.AppName, cp)
	if err := s.send(ctx); err != nil {
		return fmt.Errorf("syslog checkpoint %d: %w", cp.Size, err)
	}
	return nil
}

// send writes the frames in buf, (re)dialling first when needed.
func (s *Syslog) send(ctx context.Context) error {
	if s.conn != nil && !alive(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return fmt.Errorf("syslog dial %s: %w", s.cfg.Addr, err)
		}
		s.conn = c
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(s.buf.Bytes()); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog write: %w", err)
	}
	return nil
}

func (s *Syslog) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if s.cfg.Network == "tls" {
		cfg := s.cfg.TLS
		if cfg == nil {
			host, _, _ := net.SplitHostPort(s.cfg.Addr)
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		d := &tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", s.cfg.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.cfg.Addr)
}

// alive reports whether c still looks open: syslog receivers never send,
// so a read that does not time out means the peer closed (EOF) or reset.
func alive(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the connection.
func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// appendFrame appends one octet-counted RFC 5424 frame for r to buf.
func appendFrame(buf *bytes.Buffer, facility int, hostname, appName string, r audit.Record, outcome string) {
	var msg bytes.Buffer
	msg.Grow(len(r.Bytes) + 256)
	writeHeader(&msg, facility*8+severity(outcome), r.Time, hostname, appName, r.Action)
	msg.WriteString(" [" + syslogSDID + " id=\"")
	writeParam(&msg, r.ID)
	msg.WriteString("\" seq=\"")
	msg.WriteString(strconv.FormatInt(r.Seq, 10))
	msg.WriteString("\" outcome=\"")
	writeParam(&msg, outcome)
	msg.WriteString("\"] \xEF\xBB\xBF") // BOM: the MSG is UTF-8
	line := r.Line()
	msg.Write(line[:len(line)-1])
	appendOctetCounted(buf, msg.Bytes())
}

// appendCheckpointFrame appends one frame for a signed checkpoint:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - audit.checkpoint [loggate@32473 id="cp-.." size=".." origin=".."] BOM<CheckpointJSON>
func appendCheckpointFrame(buf *bytes.Buffer, facility int, hostname, appName string, cp audit.Checkpoint) {
	var msg bytes.Buffer
	body := CheckpointJSON(cp)
	msg.Grow(len(body) + 256)
	writeHeader(&msg, facility*8+6, cp.Time, hostname, appName, CheckpointType) // 6: informational
	msg.WriteString(" [" + syslogSDID + " id=\"")
	writeParam(&msg, CheckpointID(cp))
	msg.WriteString("\" size=\"")
	msg.WriteString(strconv.FormatInt(cp.Size, 10))
	msg.WriteString("\" origin=\"")
	writeParam(&msg, cp.Origin)
	msg.WriteString("\"] \xEF\xBB\xBF")
	msg.Write(body)
	appendOctetCounted(buf, msg.Bytes())
}

// writeHeader writes "<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID".
func writeHeader(msg *bytes.Buffer, pri int, t time.Time, hostname, appName, msgID string) {
	msg.WriteByte('<')
	msg.WriteString(strconv.Itoa(pri))
	msg.WriteString(">1 ")
	msg.WriteString(t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	msg.WriteByte(' ')
	msg.WriteString(headerField(hostname, 255))
	msg.WriteByte(' ')
	msg.WriteString(headerField(appName, 48))
	msg.WriteString(" - ")
	msg.WriteString(headerField(msgID, 32))
}

// appendOctetCounted appends "MSG-LEN SP SYSLOG-MSG".
func appendOctetCounted(buf *bytes.Buffer, msg []byte) {
	buf.WriteString(strconv.Itoa(len(msg)))
	buf.WriteByte(' ')
	buf.Write(msg)
}

func severity(outcome string) int {
	switch outcome {
	case audit.OutcomeSuccess:
		return 5 // notice
	case audit.OutcomeError:
		return 3 // error
	default:
		return 4 // warning: denied, failure, interrupted
	}
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most n bytes, "-" when empty.
func headerField(s string, n int) string {
	b := []byte(s)
	if len(b) > n {
		b = b[:n]
	}
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// writeParam writes an SD-PARAM value, escaping '"', '\' and ']'.
func writeParam(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', ']':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
}
