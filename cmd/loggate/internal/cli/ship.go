package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api/client"
)

func shipCommand() *command {
	return &command{
		name:    "ship",
		summary: "send a file or stdin to the gateway as a log source",
		usage:   "loggate ship --server URL --token-file F --service S --env E [FILE|-]",
		help: `Reads log lines from FILE (following it across rotation and truncation, like
tail -F) or from stdin (until it ends), and sends them to the gateway's ingest
endpoint in gzip-compressed NDJSON batches. A line that is a JSON object is sent
as it is; any other line becomes {"message": line}. Failed sends are retried
with backoff; 429 and 503 answers are honoured with their Retry-After.

The source token comes from --token-file or $LOGGATE_SOURCE_TOKEN, never from
the command line. The stream from --service/--env or $LOGGATE_SERVICE/$LOGGATE_ENV.`,
		example: `  myapp 2>&1 | loggate ship --server https://loggate.example.com --token-file /run/secrets/loggate --service checkout --env prod
  loggate ship --token-file checkout.token --service checkout --env prod /var/log/checkout/app.log
  LOGGATE_SOURCE_TOKEN=... loggate ship --service checkout --env staging --from-end app.log`,
		flags: func(fs *flag.FlagSet) {
			fs.String("server", "", "gateway URL (else $LOGGATE_SERVER)")
			fs.String("token-file", "", "file holding the source token (else $LOGGATE_SOURCE_TOKEN)")
			fs.String("service", "", "service name of the stream (else $LOGGATE_SERVICE)")
			fs.String("env", "", "environment of the stream (else $LOGGATE_ENV)")
			fs.Bool("from-end", false, "start at the end of FILE instead of its beginning")
			fs.Bool("no-follow", false, "stop at the end of FILE instead of following it")
			fs.Int("batch-lines", 1000, "send at most this many lines per request")
			fs.Int("batch-bytes", 1<<20, "send at most about this many bytes (before compression) per request")
			fs.Duration("flush", time.Second, "send a partial batch after this long")
			fs.Duration("poll", 250*time.Millisecond, "how often to look for new lines and rotation in FILE")
		},
		run: (*cli).ship,
	}
}

// shipper batches lines and sends them to the ingest endpoint.
type shipper struct {
	c          *cli
	endpoint   string // full ingest URL with service and env
	token      string // never printed
	maxLines   int
	maxBytes   int
	flushEvery time.Duration

	sent, dropped, requests int
}

func (c *cli) ship(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) > 1 {
		return exitcode.Usagef("ship reads one FILE or - (stdin)")
	}
	path := "-"
	if len(args) == 1 {
		path = args[0]
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	server, err := c.serverURL(fs, cfg)
	if err != nil {
		return err
	}
	var token string
	if p := flagString(fs, "token-file"); p != "" {
		if token, err = readTokenFile(p); err != nil {
			return err
		}
	} else if token = strings.TrimSpace(c.getenv("LOGGATE_SOURCE_TOKEN")); token == "" {
		return exitcode.Usagef("ship needs a source token: --token-file FILE or LOGGATE_SOURCE_TOKEN (an admin creates one with `loggate source create`)")
	}
	service, env := flagString(fs, "service"), flagString(fs, "env")
	if service == "" {
		service = c.getenv("LOGGATE_SERVICE")
	}
	if env == "" {
		env = c.getenv("LOGGATE_ENV")
	}
	if service == "" || env == "" {
		return exitcode.Usagef("ship needs the stream: --service NAME --env NAME (or LOGGATE_SERVICE, LOGGATE_ENV)")
	}
	getInt := func(name string) int { return flagInt(fs, name) }
	getDur := func(name string) time.Duration { return fs.Lookup(name).Value.(flag.Getter).Get().(time.Duration) }
	s := &shipper{c: c, token: token, maxLines: max(1, getInt("batch-lines")), maxBytes: max(1024, getInt("batch-bytes")),
		flushEvery: max(10*time.Millisecond, getDur("flush")),
		endpoint:   server + "/api/v1/ingest?" + url.Values{"service": {service}, "env": {env}}.Encode()}

	lines := make(chan []byte, 1024)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	if path == "-" {
		go func() { readErr <- readLines(readCtx, c.stdin, lines) }()
	} else {
		f := &follower{path: path, fromEnd: flagString(fs, "from-end") == "true",
			follow: flagString(fs, "no-follow") != "true", poll: max(10*time.Millisecond, getDur("poll")), notef: s.notef}
		go func() { readErr <- f.run(readCtx, lines) }()
	}
	err = s.loop(ctx, lines)
	stopReading()
	// A reader blocked on stdin cannot be interrupted; it ends with the
	// process, so wait for it only briefly.
	select {
	case rerr := <-readErr:
		if err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
			err = rerr
		}
	case <-time.After(time.Second):
	}
	fmt.Fprintf(c.stderr, "loggate ship: sent %d lines in %d requests", s.sent, s.requests)
	if s.dropped > 0 {
		fmt.Fprintf(c.stderr, ", dropped %d the server refused", s.dropped)
	}
	fmt.Fprintln(c.stderr)
	return err
}

func (s *shipper) notef(format string, a ...any) {
	fmt.Fprintf(s.c.stderr, "loggate ship: "+format+"\n", a...)
}

// loop batches lines until the input ends or ctx is done, then flushes.
func (s *shipper) loop(ctx context.Context, lines <-chan []byte) error {
	var batch [][]byte
	size := 0
	tick := time.NewTicker(s.flushEvery)
	defer tick.Stop()
	flush := func(ctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		err := s.send(ctx, batch)
		batch, size = nil, 0
		return err
	}
	// finalFlush sends what is buffered when stopping, with a bounded wait.
	finalFlush := func() error {
		fctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		n := len(batch) // flush empties batch, sent or not
		if err := flush(fctx); err != nil {
			return fmt.Errorf("could not send the last %d lines: %w", n, err)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			for { // take what the reader already handed over
				select {
				case l, ok := <-lines:
					if ok {
						batch = append(batch, l)
						continue
					}
				default:
				}
				break
			}
			return finalFlush()
		case l, ok := <-lines:
			if !ok {
				return finalFlush()
			}
			batch = append(batch, l)
			size += len(l) + 1
			if len(batch) >= s.maxLines || size >= s.maxBytes {
				if err := flush(ctx); err != nil {
					return s.stopErr(ctx, err, finalFlush)
				}
			}
		case <-tick.C:
			if err := flush(ctx); err != nil {
				return s.stopErr(ctx, err, finalFlush)
			}
		}
	}
}

func (s *shipper) stopErr(ctx context.Context, err error, finalFlush func() error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return finalFlush()
	}
	return err
}

// toNDJSON turns an input line into one JSON object: JSON objects pass
// through, anything else becomes {"message": line}. Empty lines are nil.
func toNDJSON(line []byte) []byte {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	if t := bytes.TrimSpace(line); t[0] == '{' && json.Valid(t) {
		return append([]byte(nil), t...)
	}
	b, _ := json.Marshal(map[string]string{"message": string(line)})
	return b
}

// permanentError is a refusal that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// send posts one batch, retrying transient failures with backoff until ctx
// ends. A 413 splits the batch; a 400 drops it (retrying cannot fix it).
func (s *shipper) send(ctx context.Context, batch [][]byte) error {
	var raw bytes.Buffer
	for _, l := range batch {
		raw.Write(l)
		raw.WriteByte('\n')
	}
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	_, _ = zw.Write(raw.Bytes())
	_ = zw.Close()
	backoff := 500 * time.Millisecond
	for {
		wait, err := s.post(ctx, body.Bytes())
		if err == nil {
			s.sent += len(batch)
			return nil
		}
		var perm *permanentError
		var tooLarge *tooLargeError
		switch {
		case errors.As(err, &tooLarge) && len(batch) > 1:
			half := len(batch) / 2
			if err := s.send(ctx, batch[:half]); err != nil {
				return err
			}
			return s.send(ctx, batch[half:])
		case errors.As(err, &tooLarge):
			s.dropped++
			s.notef("dropped a line of %d bytes: the server refuses it as too large", len(batch[0]))
			return nil
		case errors.As(err, &perm):
			return perm.err
		case errors.Is(err, errBadBatch):
			s.dropped += len(batch)
			s.notef("dropped %d lines: %v", len(batch), err)
			return nil
		}
		if wait <= 0 {
			// Full jitter around the exponential step.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(backoff*2, 30*time.Second)
		}
		s.notef("%v; retrying in %s", err, wait.Round(10*time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

type tooLargeError struct{}

func (tooLargeError) Error() string { return "batch too large" }

var errBadBatch = errors.New("the server refused the batch")

// post sends one request. It returns the server's Retry-After (when given)
// with a transient error, a *permanentError, *tooLargeError, errBadBatch, or nil.
func (s *shipper) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, &permanentError{err}
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "loggate-ship/"+s.c.version)
	s.requests++
	resp, err := s.c.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("cannot reach the gateway (%v)", unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	ae := client.DecodeError(resp.StatusCode, data)
	switch st := resp.StatusCode; {
	case st/100 == 2:
		return 0, nil
	case st == http.StatusTooManyRequests || st >= 500:
		return retryAfter(resp.Header.Get("Retry-After"), time.Now()), fmt.Errorf("the gateway answered %d (%s)", st, ae.Message)
	case st == http.StatusRequestEntityTooLarge:
		return 0, &tooLargeError{}
	case st == http.StatusUnauthorized:
		return 0, &permanentError{errors.New("the gateway refused the source token (unknown or revoked): check --token-file or LOGGATE_SOURCE_TOKEN")}
	case st == http.StatusForbidden:
		return 0, &permanentError{&exitcode.Error{Code: exitcode.Denied, Err: fmt.Errorf("denied: %s", ae.Message)}}
	case st == http.StatusNotFound:
		return 0, &permanentError{errors.New("no ingest endpoint at the server: check --server")}
	default:
		return 0, fmt.Errorf("%w: %d %s", errBadBatch, st, ae.Message)
	}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), capped
// at five minutes; zero when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 5*time.Minute)
}

// readLines sends each line of r (as NDJSON) until EOF or ctx ends.
func readLines(ctx context.Context, r io.Reader, out chan<- []byte) error {
	defer close(out)
	lr := newLineReader(r)
	for {
		line, complete, err := lr.next()
		if !complete {
			line = lr.rest()
		}
		if b := toNDJSON(line); b != nil {
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// maxShipLine caps one line; the rest of a longer line is skipped.
const maxShipLine = 256 << 10

// lineReader splits input into lines, keeping an incomplete last line
// until more input (or rest) completes it.
type lineReader struct {
	br      *bufio.Reader
	partial []byte
	offset  int64 // bytes consumed from the current input
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{br: bufio.NewReaderSize(r, 64<<10)} }

// reset switches to a new input; an incomplete line is kept.
func (l *lineReader) reset(r io.Reader) {
	l.br.Reset(r)
	l.offset = 0
}

// next returns the next complete line. Without one it returns
// complete=false and the read error (io.EOF at the end for now).
func (l *lineReader) next() (line []byte, complete bool, err error) {
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.offset += int64(len(chunk))
		if room := maxShipLine - len(l.partial); room > 0 {
			l.partial = append(l.partial, chunk[:min(len(chunk), room)]...)
		}
		if err == nil {
			line, l.partial = l.partial, nil
			return line, true, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, err
		}
	}
}

// rest returns and forgets the incomplete line.
func (l *lineReader) rest() []byte {
	p := l.partial
	l.partial = nil
	return p
}
