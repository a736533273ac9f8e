package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/loggate/loggate/gateway/api"
)

// maxAnswer bounds an answer the client reads.
const maxAnswer = 64 << 20

// Client calls one gateway. Its fields are set before the first call and
// not changed after.
type Client struct {
	// BaseURL is the gateway, e.g. "https://loggate.example.com".
	BaseURL string
	// Token returns the bearer token for a call (an OIDC ID token). Nil
	// sends no Authorization header.
	Token func(ctx context.Context) (string, error)
	// HTTPClient makes the calls; nil means http.DefaultClient.
	HTTPClient *http.Client
	// UserAgent is sent when not empty.
	UserAgent string
}

// Error is a non-2xx answer: the status and the server's api.Error body.
type Error struct {
	Status  int
	Code    string // one of the api.Code* values
	Message string // short, for a person
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// DecodeError reads a non-2xx answer's body (an api.Error, or anything
// else: then the message is the status text).
func DecodeError(status int, body []byte) *Error {
	var b api.Error
	_ = json.Unmarshal(body, &b)
	if b.Message == "" {
		b.Message = http.StatusText(status)
	}
	return &Error{Status: status, Code: b.Code, Message: b.Message}
}

// StatusOf is the HTTP status of an *Error in err's chain, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Do sends body (JSON, when non-nil) with method to path (with its query) and
// decodes a 2xx answer into out (when non-nil; a *[]byte or a
// *json.RawMessage keeps it as sent, *[]byte also when it is not JSON). A non-2xx answer is an *Error; a call that got no answer is
// net/http's *url.Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if c.Token != nil {
		tok, err := c.Token(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", strings.TrimRight(c.BaseURL, "/"), err)
	}
	if resp.StatusCode/100 != 2 {
		return DecodeError(resp.StatusCode, data)
	}
	if raw, ok := out.(*[]byte); ok { // the answer as it is (NDJSON, say)
		*raw = data
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: the server's answer is not the expected JSON: %w", method, path, err)
		}
	}
	return nil
}

// id keeps an id from changing the path.
func id(s string) string { return url.PathEscape(s) }

// Me is who the token belongs to.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var v api.Me
	return v, c.Do(ctx, http.MethodGet, "/api/v1/me", nil, &v)
}

// Streams lists the streams the caller may ask for.
func (c *Client) Streams(ctx context.Context) ([]api.Stream, error) {
	var v api.List[api.Stream]
	return v.Items, c.Do(ctx, http.MethodGet, "/api/v1/streams", nil, &v)
}

// CreateRequest asks for access; the answer says whether it was granted at
// once, is pending or was denied.
func (c *Client) CreateRequest(ctx context.Context, r api.CreateRequest) (api.Request, error) {
	var v api.Request
	return v, c.Do(ctx, http.MethodPost, "/api/v1/requests", r, &v)
}

// Request reads one request.
func (c *Client) Request(ctx context.Context, reqID string) (api.Request, error) {
	var v api.Request
	return v, c.Do(ctx, http.MethodGet, "/api/v1/requests/"+id(reqID), nil, &v)
}

// Requests reads one page of requests; q filters (state, mine, cursor, limit).
func (c *Client) Requests(ctx context.Context, q url.Values) (api.List[api.Request], error) {
	var v api.List[api.Request]
	return v, c.Do(ctx, http.MethodGet, withQuery("/api/v1/requests", q), nil, &v)
}

// Approve approves someone else's request.
func (c *Client) Approve(ctx context.Context, reqID, comment string) (api.Request, error) {
	return c.verdict(ctx, reqID, "approve", comment)
}

// Deny denies someone else's request; the comment is required.
func (c *Client) Deny(ctx context.Context, reqID, comment string) (api.Request, error) {
	return c.verdict(ctx, reqID, "deny", comment)
}

func (c *Client) verdict(ctx context.Context, reqID, verdict, comment string) (api.Request, error) {
	var v api.Request
	return v, c.Do(ctx, http.MethodPost, "/api/v1/requests/"+id(reqID)+"/"+verdict, api.Verdict{Comment: comment}, &v)
}

// Cancel withdraws one's own pending request.
func (c *Client) Cancel(ctx context.Context, reqID string) (api.Request, error) {
	var v api.Request
	return v, c.Do(ctx, http.MethodPost, "/api/v1/requests/"+id(reqID)+"/cancel", struct{}{}, &v)
}

// Grant reads one grant.
func (c *Client) Grant(ctx context.Context, grantID string) (api.Grant, error) {
	var v api.Grant
	return v, c.Do(ctx, http.MethodGet, "/api/v1/grants/"+id(grantID), nil, &v)
}

// Grants reads one page of grants; q filters (active, all, cursor, limit).
func (c *Client) Grants(ctx context.Context, q url.Values) (api.List[api.Grant], error) {
	var v api.List[api.Grant]
	return v, c.Do(ctx, http.MethodGet, withQuery("/api/v1/grants", q), nil, &v)
}

// Revoke ends a grant now; the reason is required.
func (c *Client) Revoke(ctx context.Context, grantID, reason string) (api.Grant, error) {
	var v api.Grant
	return v, c.Do(ctx, http.MethodPost, "/api/v1/grants/"+id(grantID)+"/revoke", api.Revoke{Reason: reason}, &v)
}

// Extend asks for more time on an active grant; the answer is the extension
// request, which policy may approve at once or leave pending.
func (c *Client) Extend(ctx context.Context, grantID string, e api.Extend) (api.Request, error) {
	var v api.Request
	return v, c.Do(ctx, http.MethodPost, "/api/v1/grants/"+id(grantID)+"/extend", e, &v)
}

// Audit reads one page of audit events (security only); q filters.
func (c *Client) Audit(ctx context.Context, q url.Values) (api.List[api.AuditEvent], error) {
	var v api.List[api.AuditEvent]
	return v, c.Do(ctx, http.MethodGet, withQuery("/api/v1/audit", q), nil, &v)
}

// CreateSource registers a log source (loggate-admins); the answer holds
// its token, shown this once.
func (c *Client) CreateSource(ctx context.Context, s api.CreateSource) (api.Source, error) {
	var v api.Source
	return v, c.Do(ctx, http.MethodPost, "/api/v1/sources", s, &v)
}

// RevokeSource stops a source's token from working.
func (c *Client) RevokeSource(ctx context.Context, sourceID string) (api.Source, error) {
	var v api.Source
	return v, c.Do(ctx, http.MethodPost, "/api/v1/sources/"+id(sourceID)+"/revoke", struct{}{}, &v)
}

func withQuery(path string, q url.Values) string {
	if enc := q.Encode(); enc != "" {
		return path + "?" + enc
	}
	return path
}
