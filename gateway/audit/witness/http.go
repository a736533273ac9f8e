package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/loggate/loggate/gateway/audit"
)

// maxAnswerBytes bounds one answer read from the server.
const maxAnswerBytes = 4 << 20

// HTTPSource reads a gateway's public audit endpoints: GET
// /api/v1/audit/keys, /api/v1/audit/checkpoint and
// /api/v1/audit/consistency. They need no credentials; Token, when set, is
// sent anyway (for a proxy that wants one) and is required by
// ReportFailure.
type HTTPSource struct {
	// BaseURL is the gateway's URL, e.g. https://loggate.example.com.
	BaseURL string
	// Token is a bearer token; empty sends none.
	Token string
	// Client; nil means http.DefaultClient.
	Client *http.Client
}

var _ Source = (*HTTPSource)(nil)

// ErrNoToken: a failure cannot be reported without a token.
var ErrNoToken = errors.New("no token to report the failure with")

func (h *HTTPSource) do(ctx context.Context, method, path string, body, out any) error {
	u, err := url.Parse(strings.TrimSuffix(h.BaseURL, "/") + path)
	if err != nil {
		return fmt.Errorf("server URL: %w", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if len(b) > maxAnswerBytes {
		return fmt.Errorf("%s %s: answer over %d bytes", method, path, maxAnswerBytes)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return &HTTPError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Status int
	Msg    string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Status, e.Msg) }

// Keys implements Source.
func (h *HTTPSource) Keys(ctx context.Context) ([]string, error) {
	var out struct {
		Keys []string `json:"verifier_keys"`
	}
	err := h.do(ctx, http.MethodGet, "/api/v1/audit/keys", nil, &out)
	return out.Keys, err
}

// Checkpoint implements Source.
func (h *HTTPSource) Checkpoint(ctx context.Context) ([]byte, error) {
	var cp audit.Checkpoint
	if err := h.do(ctx, http.MethodGet, "/api/v1/audit/checkpoint", nil, &cp); err != nil {
		return nil, err
	}
	return []byte(cp.Note), nil
}

// Consistency implements Source.
func (h *HTTPSource) Consistency(ctx context.Context, from, to int64) (audit.ConsistencyProof, error) {
	var p audit.ConsistencyProof
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}}
	err := h.do(ctx, http.MethodGet, "/api/v1/audit/consistency?"+q.Encode(), nil, &p)
	return p, err
}

// ReportFailure posts f to /api/v1/audit/witness-failures, which records an
// audit.witness_failed event; it needs Token. It returns the event id.
func (h *HTTPSource) ReportFailure(ctx context.Context, f *Failure) (string, error) {
	if h.Token == "" {
		return "", ErrNoToken
	}
	body := map[string]any{"kind": f.Kind, "message": truncate(f.Msg, 900)}
	if f.Trusted != nil {
		body["trusted"] = f.Trusted
	}
	if f.Seen != nil {
		body["seen"] = f.Seen
	}
	var out struct {
		EventID string `json:"event_id"`
	}
	if err := h.do(ctx, http.MethodPost, "/api/v1/audit/witness-failures", body, &out); err != nil {
		return "", err
	}
	return out.EventID, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
