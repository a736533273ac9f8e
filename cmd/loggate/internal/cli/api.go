package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api/client"
)

// apiClient calls the gateway's JSON API with a bearer token.
type apiClient struct {
	c     *cli
	base  string // server URL without trailing slash
	token string // never printed
	// renew gets a fresh token after a 401 (nil: the token cannot be renewed).
	renew func(ctx context.Context) (string, error)
}

// renewToken swaps in a fresh token; false when that is not possible.
func (a *apiClient) renewToken(ctx context.Context) bool {
	if a.renew == nil {
		return false
	}
	tok, err := a.renew(ctx)
	if err != nil || tok == "" || tok == a.token {
		return false
	}
	a.token = tok
	return true
}

// do sends a JSON request and decodes a JSON answer into out (when non-nil).
// Errors come back with an exit code and a message naming the fix.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	err := a.doOnce(ctx, method, path, body, out)
	var ce *exitcode.Error
	if errors.As(err, &ce) && errors.Is(ce.Err, errUnauthorized) && a.renewToken(ctx) {
		err = a.doOnce(ctx, method, path, body, out)
	}
	return err
}

// sessionDo signs in as the command's flags say (c.session) and sends one
// API call, answering with its decoded JSON: the body of commands that do
// one thing on the server.
func sessionDo[T any](ctx context.Context, c *cli, fs *flag.FlagSet, method, path string, body any) (T, error) {
	var out T
	a, err := c.session(ctx, fs)
	if err != nil {
		return out, err
	}
	err = a.do(ctx, method, path, body, &out)
	return out, err
}

// errUnauthorized marks a 401 answer.
var errUnauthorized = errors.New("not signed in or your sign-in expired")

func (a *apiClient) doOnce(ctx context.Context, method, path string, body, out any) error {
	c := client.Client{BaseURL: a.base, HTTPClient: a.c.client(), UserAgent: "loggate-cli/" + a.c.version,
		Token: func(context.Context) (string, error) { return a.token, nil }}
	err := c.Do(ctx, method, path, body, out)
	var ae *client.Error
	var ue *url.Error
	switch {
	case errors.As(err, &ae):
		return a.statusError(ae)
	case errors.As(err, &ue):
		return a.transportError(err)
	}
	return err
}

func (a *apiClient) transportError(err error) error {
	if errors.Is(err, context.Canceled) {
		return &exitcode.Error{Code: exitcode.Aborted}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s did not answer in time: check the server and your network", a.base)
	}
	return fmt.Errorf("cannot reach %s (%v): check --server or LOGGATE_SERVER", a.base, unwrapURLError(err))
}

// unwrapURLError drops the "Get URL:" prefix so the message says the cause once.
func unwrapURLError(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		if !strings.Contains(err.Error(), "://") {
			return err
		}
		err = u
	}
}

// statusError turns an API error into a message with a fix and an exit code:
// 3 for refusals (403), 1 otherwise.
func (a *apiClient) statusError(e *client.Error) error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("%w (%s): run `loggate login --server %s`", errUnauthorized, e.Message, a.base)}
	case e.Status == http.StatusForbidden:
		return &exitcode.Error{Code: exitcode.Denied, Err: fmt.Errorf("denied: %s", e.Message)}
	case e.Status == http.StatusNotFound:
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("not found: %s", e.Message)}
	case e.Status >= 500:
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("server error (%d %s): %s; try again shortly", e.Status, e.Code, e.Message)}
	default:
		return &exitcode.Error{Code: exitcode.Failure, Err: messageError{e}}
	}
}

// messageError says only the server's message; the *client.Error (its
// status) stays reachable with errors.As.
type messageError struct{ e *client.Error }

func (m messageError) Error() string { return m.e.Message }
func (m messageError) Unwrap() error { return m.e }

// pathEscape keeps an id from changing the path.
func pathEscape(id string) string { return url.PathEscape(id) }

// getOrPrint GETs path; with asJSON it prints the answer as one compact
// JSON line (printed true), else it decodes it into v (what names it in an
// error).
func (a *apiClient) getOrPrint(ctx context.Context, c *cli, path string, asJSON bool, what string, v any) (printed bool, err error) {
	var raw json.RawMessage
	if err := a.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return false, err
	}
	if asJSON {
		return true, writeCompactJSON(c.stdout, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("unexpected %s from the server: %w", what, err)
	}
	return false, nil
}
