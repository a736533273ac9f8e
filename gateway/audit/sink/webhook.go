package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// Webhook signature headers, as in the Standard Webhooks specification.
const (
	HeaderWebhookID        = "Webhook-Id"        // the event id (also in the body)
	HeaderWebhookTimestamp = "Webhook-Timestamp" // unix seconds of the attempt
	HeaderWebhookSignature = "Webhook-Signature" // "v1," + base64(HMAC-SHA256(secret, id "." timestamp "." body))
)

// minSecretBytes is the shortest webhook secret accepted.
const minSecretBytes = 16

// WebhookConfig configures NewWebhook.
type WebhookConfig struct {
	// URL receives one POST per event (required; http or https).
	URL string
	// Secret keys the HMAC-SHA256 signature (required, at least 16 bytes);
	// see ParseWebhookSecret for reading it from a file.
	Secret []byte
	// Client sends the requests. If nil, a client with a 10s timeout.
	Client *http.Client
	// Now returns the current time (the signed timestamp). If nil, time.Now.
	Now func() time.Time
}

// Webhook POSTs each event as its NDJSON line (the stored record and its
// hash, a JSON object) with an HMAC-SHA256 signature header. Any 2xx
// response counts as delivered.
type Webhook struct {
	cfg WebhookConfig
}

// NewWebhook validates cfg.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit webhook sink: URL %q: want http(s)://host/...", cfg.URL)
	}
	if len(cfg.Secret) < minSecretBytes {
		return nil, fmt.Errorf("audit webhook sink: secret must be at least %d bytes", minSecretBytes)
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webhook{cfg: cfg}, nil
}

// ParseWebhookSecret reads a secret file's contents: surrounding whitespace
// is ignored, and a "whsec_" prefix means the rest is base64 (the Standard
// Webhooks convention); otherwise the bytes are the secret.
func ParseWebhookSecret(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, errors.New("webhook secret: whsec_ prefix but not base64")
		}
		s = string(k)
	}
	if len(s) < minSecretBytes {
		return nil, fmt.Errorf("webhook secret: must be at least %d bytes", minSecretBytes)
	}
	return []byte(s), nil
}

// SignWebhook returns the signature header value for a message: "v1," and
// the base64 HMAC-SHA256 of id "." timestamp "." body.
func SignWebhook(secret []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// VerifyWebhook checks a received webhook the way a receiver should: the
// timestamp within tolerance of now, and one of the space-separated
// signatures matching (compared in constant time).
func VerifyWebhook(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderWebhookTimestamp), 10, 64)
	if err != nil {
		return errors.New("webhook: bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside tolerance")
	}
	want := SignWebhook(secret, h.Get(HeaderWebhookID), ts, body)
	for _, sig := range strings.Fields(h.Get(HeaderWebhookSignature)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: no matching signature")
}

// Deliver POSTs recs one by one, stopping at the first failure.
func (w *Webhook) Deliver(ctx context.Context, recs []audit.Record) error {
	for _, r := range recs {
		if err := w.post(ctx, r); err != nil {
			return fmt.Errorf("webhook seq %d: %w", r.Seq, err)
		}
	}
	return nil
}

func (w *Webhook) post(ctx context.Context, r audit.Record) error {
	body := r.Line()
	return w.send(ctx, r.ID, body[:len(body)-1]) // one JSON object, no newline
}

// DeliverCheckpoint POSTs cp as one JSON object with
// "type":"audit.checkpoint", signed like an event, its Webhook-Id being
// CheckpointID(cp).
func (w *Webhook) DeliverCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	if err := w.send(ctx, CheckpointID(cp), CheckpointJSON(cp)); err != nil {
		return fmt.Errorf("webhook checkpoint %d: %w", cp.Size, err)
	}
	return nil
}

// send POSTs one signed body.
func (w *Webhook) send(ctx context.Context, id string, body []byte) error {
	ts := w.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "loggate-audit-sink/1")
	req.Header.Set(HeaderWebhookID, id)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderWebhookSignature, SignWebhook(w.cfg.Secret, id, ts, body))
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the URL may carry a token: keep it out of logs
		}
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Close releases idle connections.
func (w *Webhook) Close() error {
	w.cfg.Client.CloseIdleConnections()
	return nil
}
