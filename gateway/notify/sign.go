package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretKey turns a configured secret into HMAC key bytes: "whsec_" +
// base64 is the Standard Webhooks form; anything else is used as is.
func secretKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		k, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(k) == 0 {
			return nil, errors.New(`secret starts with "whsec_" but the rest is not base64`)
		}
		return k, nil
	}
	return []byte(secret), nil
}

// Sign returns the webhook-signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
func Sign(key []byte, id, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify when no signature matches.
var ErrBadSignature = errors.New("webhook signature does not match")

// Verify checks a received message the way a receiver should: the
// timestamp within tolerance of now, and one of the space-separated v1
// signatures matching (compared in constant time). secret is as in
// Target.Secret.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := secretKey(secret)
	if err != nil {
		return err
	}
	if len(key) == 0 || id == "" || timestamp == "" || signatures == "" {
		return errors.New("webhook: missing secret, id, timestamp or signature")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: timestamp %q is not Unix seconds", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %s is outside the tolerance of %s", time.Unix(ts, 0).UTC(), tolerance)
	}
	want := []byte(Sign(key, id, timestamp, body))
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrBadSignature
}
