package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ReadBody reads a request body with the given Content-Encoding ("" or
// "identity", or "gzip") and returns it decompressed. More than limit bytes
// after decompression is ErrTooLarge, so a small compressed bomb cannot
// exhaust memory. An unknown encoding is ErrUnsupportedMediaType, corrupt
// gzip a client error; a failing reader (broken connection) is returned
// wrapped and is not a client error.
func ReadBody(r io.Reader, contentEncoding string, limit int64) ([]byte, error) {
	src := &sourceReader{r: r}
	var body io.Reader = src
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, classifyRead(src, "gzip", err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, fmt.Errorf("%w: content-encoding %q", ErrUnsupportedMediaType, contentEncoding)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, classifyRead(src, "gzip", err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// sourceReader remembers an error of the underlying reader, to tell a broken
// connection from a corrupt body.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

func classifyRead(src *sourceReader, format string, err error) error {
	if src.err != nil {
		return fmt.Errorf("ingest: read body: %w", src.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return badBody(format, "truncated", err)
	}
	return badBody(format, "corrupt", err)
}
