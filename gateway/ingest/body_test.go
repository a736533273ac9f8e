package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestReadBody(t *testing.T) {
	payload := []byte(strings.Repeat(`{"message":"hello"}`+"\n", 100))
	bomb := gz(t, make([]byte, 1<<20)) // ~1 KiB compressed, 1 MiB inflated
	tests := []struct {
		name       string
		r          io.Reader
		encoding   string
		limit      int64
		want       []byte
		wantStatus int // 0: success
		wantClient bool
	}{
		{name: "identity", r: bytes.NewReader(payload), limit: 1 << 20, want: payload},
		{name: "identity explicit", r: bytes.NewReader(payload), encoding: "identity", limit: 1 << 20, want: payload},
		{name: "gzip", r: bytes.NewReader(gz(t, payload)), encoding: "GZIP", limit: 1 << 20, want: payload},
		{name: "exactly the limit", r: bytes.NewReader(payload), limit: int64(len(payload)), want: payload},
		{name: "identity over limit", r: bytes.NewReader(payload), limit: 100, wantStatus: 413},
		{name: "gzip bomb over limit", r: bytes.NewReader(bomb), encoding: "gzip", limit: 64 << 10, wantStatus: 413},
		{name: "corrupt gzip header", r: strings.NewReader("not gzip at all"), encoding: "gzip", limit: 1 << 20, wantStatus: 400, wantClient: true},
		{name: "truncated gzip", r: bytes.NewReader(gz(t, payload)[:30]), encoding: "gzip", limit: 1 << 20, wantStatus: 400, wantClient: true},
		{name: "unknown encoding", r: bytes.NewReader(payload), encoding: "br", limit: 1 << 20, wantStatus: 415, wantClient: true},
		{name: "broken connection", r: failingReader{}, limit: 1 << 20, wantStatus: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBody(tt.r, tt.encoding, tt.limit)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("ReadBody: %v", err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Errorf("body = %d bytes, want %d", len(got), len(tt.want))
				}
				return
			}
			if err == nil {
				t.Fatal("ReadBody succeeded, want error")
			}
			if s := HTTPStatus(err); s != tt.wantStatus {
				t.Errorf("HTTPStatus(%v) = %d, want %d", err, s, tt.wantStatus)
			}
			if IsClientError(err) != tt.wantClient {
				t.Errorf("IsClientError(%v) = %v, want %v", err, !tt.wantClient, tt.wantClient)
			}
		})
	}
}
