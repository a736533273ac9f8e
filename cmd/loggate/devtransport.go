package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/loggate/loggate/auth/devidp"
)

// devProviderClient is the HTTP client the authenticator uses with --dev: it
// answers requests under the built-in provider's issuer by calling the
// provider's handler in-process, and sends anything else over the network.
//
// Discovery, JWKS and token calls to the provider mounted on the gateway's
// own listener would otherwise go out to the public URL and back, which
// fails when that URL is https with a certificate this process does not
// trust (a self-signed --tls-cert, the usual case on a laptop), or when TLS
// ends at a proxy the gateway cannot reach from inside. nil without a
// provider: the authenticator's default client.
func devProviderClient(provider *devidp.Provider, issuer string) *http.Client {
	if provider == nil {
		return nil
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &inProcessTransport{
		prefix: strings.TrimRight(issuer, "/") + "/", handler: provider, next: http.DefaultTransport}}
}

// inProcessTransport serves requests whose URL starts with prefix from
// handler without a network round trip; others go to next.
type inProcessTransport struct {
	prefix  string
	handler http.Handler
	next    http.RoundTripper
}

func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.String(), t.prefix) {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	defer r.Body.Close()
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	w := &bufferedResponse{header: http.Header{}}
	t.handler.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// bufferedResponse is an http.ResponseWriter that keeps the whole answer.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}
