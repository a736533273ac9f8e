package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatewayT is a gateway started by runServe for a test, with helpers that
// speak only its public HTTP contract.
type gatewayT struct {
	t    testing.TB
	r    *running
	url  string
	done chan error
	// stop ends the gateway and checks it stopped cleanly; idempotent.
	stop func()
}

// startGateway runs `loggate serve --dev` on a loopback port with a
// temporary data directory, exactly as main wires it.
func startGateway(t testing.TB, extra ...string) *gatewayT {
	t.Helper()
	return startGatewayData(t, t.TempDir(), extra...)
}

// startGatewayData is startGateway with a given data directory, so a test
// can restart a gateway on the same state.
func startGatewayData(t testing.TB, data string, extra ...string) *gatewayT {
	t.Helper()
	return startServe(t, append([]string{"--dev", "--listen", "127.0.0.1:0", "--data", data, "--dev-demo-logs=false",
		"--log-level", "warn"}, extra...))
}

// startServe runs runServe with exactly args until the test ends (or
// g.stop), failing the test if it does not start or stop cleanly.
func startServe(t testing.TB, args []string) *gatewayT {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *running, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, args, func(string) string { return "" }, io.Discard, io.Discard,
			&serveHooks{ready: func(r *running) { ready <- r }})
	}()
	select {
	case r := <-ready:
		g := &gatewayT{t: t, r: r, url: r.URL, done: done}
		var once sync.Once
		g.stop = func() {
			once.Do(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("serve returned %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Error("serve did not stop within 20s of cancel")
				}
			})
		}
		t.Cleanup(g.stop)
		return g
	case err := <-done:
		cancel()
		t.Fatalf("serve failed to start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not become ready")
	}
	return nil
}

// token gets an ID token for a demo user with the password grant.
func (g *gatewayT) token(user string) string {
	g.t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"loggate"}, "username": {user}, "password": {user},
		"scope": {"openid profile email groups"}}
	resp, err := http.PostForm(g.url+"/dev/oidc/token", form)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.IDToken == "" {
		g.t.Fatalf("token for %s: status %d, err %v", user, resp.StatusCode, err)
	}
	return tok.IDToken
}

// call does an API request and decodes the JSON answer into out (if non-nil).
func (g *gatewayT) call(method, path, token string, body any, out any) int {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, g.url+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			g.t.Fatalf("%s %s: status %d, body %q is not JSON: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// ingest posts NDJSON lines to a stream with a source token.
func (g *gatewayT) ingest(service, env, token string, lines ...string) int {
	g.t.Helper()
	req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest?service="+service+"&env="+env,
		strings.NewReader(strings.Join(lines, "\n")+"\n"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type requestJSON struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Decision struct {
		ID                string   `json:"id"`
		Allow             bool     `json:"allow"`
		Reasons           []string `json:"reasons"`
		ApprovalsRequired int      `json:"approvals_required"`
		ApproverGroups    []string `json:"approver_groups"`
	} `json:"decision"`
	Grant *grantJSON `json:"grant"`
}

type grantJSON struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Env       string    `json:"env"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

type auditJSON struct {
	ID       string         `json:"id"`
	Seq      int64          `json:"seq"`
	Time     time.Time      `json:"time"`
	Action   string         `json:"action"`
	Actor    map[string]any `json:"actor"`
	Target   map[string]any `json:"target"`
	Outcome  string         `json:"outcome"`
	Details  map[string]any `json:"details"`
	PrevHash string         `json:"prev_hash"`
	Hash     string         `json:"hash"`
}

// jsonAnswer is the status and the JSON object body (nil when it has
// none) of a request's answer, failing the test when there is no answer.
func jsonAnswer(t testing.TB, resp *http.Response, err error) (int, map[string]string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !within(timeout, 50*time.Millisecond, cond) {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}

// within polls cond every `every` until it holds (true) or timeout has
// passed (false): the one wait loop of these tests, for a condition with
// nothing to be told by.
func within(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// waitHealthy waits up to a minute for a child gateway at base to answer
// /healthz, failing the test if it exits first (gone closes; nil: not
// watched) with its output (nil: none kept).
func waitHealthy(t *testing.T, base string, gone <-chan struct{}, output func() string) {
	t.Helper()
	up := within(60*time.Second, 50*time.Millisecond, func() bool {
		select {
		case <-gone:
			out := ""
			if output != nil {
				out = output()
			}
			t.Fatalf("gateway exited: %s", out)
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	if !up {
		t.Fatal("child gateway did not start")
	}
}
