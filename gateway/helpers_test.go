package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/auth/devidp"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/redact"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

// testUsers are the people of the workflow tests. Besides the demo trio:
// dave approves like bob; erin is in every powerful group at once (admin,
// security, on call, approver) to show none of it lets her act on her own
// request; frank is in both approver groups of "critical", to show one
// person counts once; gina is a plain engineer.
func testUsers() []devidp.User {
	u := func(name string, groups ...string) devidp.User {
		return devidp.User{Username: name, Password: name, Name: strings.ToUpper(name[:1]) + name[1:],
			Email: name + "@example.com", Groups: groups}
	}
	return []devidp.User{
		u("alice", "engineers"),
		u("bob", "engineers", "sre-leads", "oncall"),
		u("carol", "security", "loggate-admins"),
		u("dave", "engineers", "sre-leads"),
		u("erin", "engineers", "sre-leads", "oncall", "security", "loggate-admins"),
		u("frank", "engineers", "sre-leads", "security"),
		u("gina", "engineers"),
	}
}

// criticalEnv is added to the default policy for the tests: two approvals
// from sre-leads or security, pending for at most 10 minutes.
const criticalEnv = `	"critical": {
		"approvals_required": 2,
		"approver_groups": ["sre-leads", "security"],
		"oversight_groups": ["sre-leads"],
		"max_duration_seconds": 3600,
		"max_lookback_seconds": 900,
		"pending_timeout_seconds": 600,
		"reason_pattern": "",
		"min_reason_length": 0,
	},
`

// writePolicyDir copies the default policies to a temporary directory and
// adds the "critical" environment.
func writePolicyDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		b, err := fs.ReadFile(policies.FS, path)
		if err != nil {
			return err
		}
		if path == "access.rego" {
			const anchor = "environments := {\n"
			if !bytes.Contains(b, []byte(anchor)) {
				return errors.New("access.rego has no environments table")
			}
			b = bytes.Replace(b, []byte(anchor), []byte(anchor+criticalEnv), 1)
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
	})
	if err != nil {
		t.Fatalf("policy dir: %v", err)
	}
	return dir
}

// clock is real time plus an offset a test moves forward.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// note is one notification the gateway queued.
type note struct {
	Kind    string
	Payload map[string]any
}

// recNotifier records notifications.
type recNotifier struct {
	mu    sync.Mutex
	notes []note
}

func (n *recNotifier) Notify(_ context.Context, kind string, payload map[string]any) error {
	n.mu.Lock()
	n.notes = append(n.notes, note{kind, payload})
	n.mu.Unlock()
	return nil
}

func (n *recNotifier) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.notes {
		out = append(out, x.Kind)
	}
	return out
}

// faultyAuditor fails Append for the events failOn picks, like a full disk
// would for the workflow while the rest keeps working.
type faultyAuditor struct {
	Auditor
	mu     sync.Mutex
	failOn func(audit.Event) bool // guarded by mu
}

func (a *faultyAuditor) Append(ctx context.Context, ev audit.Event) (audit.Event, error) {
	a.mu.Lock()
	f := a.failOn
	a.mu.Unlock()
	if f != nil && f(ev) {
		return audit.Event{}, errors.New("injected: audit disk full")
	}
	return a.Auditor.Append(ctx, ev)
}

func (a *faultyAuditor) fail(f func(audit.Event) bool) {
	a.mu.Lock()
	a.failOn = f
	a.mu.Unlock()
}

// The local store's retention, legal hold and key rotation pass through, so
// the admin endpoints are served as in production.
var _ auditAdmin = (*faultyAuditor)(nil)

func (a *faultyAuditor) admin() auditAdmin { return a.Auditor.(auditAdmin) }
func (a *faultyAuditor) SetLegalHold(ctx context.Context, on bool, reason string, actor audit.Actor) (audit.Event, error) {
	return a.admin().SetLegalHold(ctx, on, reason, actor)
}
func (a *faultyAuditor) LegalHold(ctx context.Context) (audit.LegalHold, error) {
	return a.admin().LegalHold(ctx)
}
func (a *faultyAuditor) Purge(ctx context.Context, before time.Time, actor audit.Actor) (audit.PurgeResult, error) {
	return a.admin().Purge(ctx, before, actor)
}
func (a *faultyAuditor) RotateKey(ctx context.Context, actor audit.Actor) error {
	return a.admin().RotateKey(ctx, actor)
}
func (a *faultyAuditor) VerifierKeys() []string { return a.admin().VerifierKeys() }

// harness is a real gateway (real authenticator against the development
// identity provider, real policy engine, audit trail, SQLite store, log hub
// and redactor) behind an httptest server.
type harness struct {
	t         testing.TB
	srv       *Server
	url       string
	clock     *clock
	notes     *recNotifier
	audit     *faultyAuditor
	policy    *policy.Engine
	store     *store.Store
	hub       *logs.Hub
	policyDir string

	mu     sync.Mutex
	tokens map[string]string // user -> ID token; guarded by mu
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with a chance to change the gateway's
// Config before New (nil: none).
func newHarnessWith(t testing.TB, configure func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, clock: &clock{}, notes: &recNotifier{}, tokens: map[string]string{}}

	var gw atomic.Pointer[Server]
	var idp *devidp.Provider
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/dev/oidc/") {
			idp.ServeHTTP(w, r)
			return
		}
		if s := gw.Load(); s != nil {
			s.ServeHTTP(w, r)
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	h.url = ts.URL
	pub, _ := url.Parse(ts.URL)

	var err error
	idp, err = devidp.New(devidp.Config{Issuer: ts.URL + "/dev/oidc", Users: testUsers(),
		Clients: []devidp.Client{{ID: "loggate", RedirectURIs: []string{ts.URL + "/auth/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })

	authn, err := auth.New(auth.Config{IssuerURL: ts.URL + "/dev/oidc", ClientID: "loggate", PublicClientID: "loggate",
		RedirectURL: ts.URL + "/auth/callback", SessionKeys: [][]byte{bytes.Repeat([]byte("k"), 32)},
		OnEvent: func(ctx context.Context, ev auth.Event) error {
			if s := gw.Load(); s != nil {
				return s.RecordAuth(ctx, ev)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authn.Close() })

	h.policyDir = writePolicyDir(t)
	h.policy, err = policy.New(ctx, policy.Config{Dir: h.policyDir, RunTestsOnLoad: true})
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	aud, err := audit.Open(ctx, audit.Config{Dir: filepath.Join(t.TempDir(), "audit"), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aud.Close() })
	h.audit = &faultyAuditor{Auditor: aud}
	backend, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	h.store = store.New(backend)
	t.Cleanup(func() { h.store.Close() })
	h.hub, err = logs.NewHub(logs.HubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.hub.Close() })
	red, err := redact.New(redact.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{PublicURL: pub, Auth: authn, Policy: h.policy, Audit: h.audit, Store: h.store,
		Hub: h.hub, Redactor: red, Notifier: h.notes, Now: h.clock.Now}
	if configure != nil {
		configure(&cfg)
	}
	h.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.srv.Shutdown(ctx)
	})
	gw.Store(h.srv)
	streams := []store.StreamRef{{Service: "checkout", Env: "staging"}, {Service: "checkout", Env: "prod"},
		{Service: "checkout", Env: "critical"}}
	if _, err := h.srv.CreateSource(ctx, systemActor, "test", "", streams); err != nil {
		t.Fatal(err)
	}
	return h
}

// token returns an ID token for a test user (password grant).
func (h *harness) token(user string) string {
	h.t.Helper()
	h.mu.Lock()
	tok, ok := h.tokens[user]
	h.mu.Unlock()
	if ok {
		return tok
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"loggate"}, "username": {user}, "password": {user},
		"scope": {"openid profile email groups"}}
	resp, err := http.PostForm(h.url+"/dev/oidc/token", form)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.IDToken == "" {
		h.t.Fatalf("token for %s: status %d, %v", user, resp.StatusCode, err)
	}
	h.mu.Lock()
	h.tokens[user] = body.IDToken
	h.mu.Unlock()
	return body.IDToken
}

// call makes an API request as user and decodes a JSON answer into out
// (when non-nil and the body is not empty). It returns the status.
func (h *harness) call(user, method, path string, body, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+h.token(user))
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// ask creates a request as user and insists on the status.
func (h *harness) ask(user string, body map[string]any, wantStatus int) api.Request {
	h.t.Helper()
	var v api.Request
	if got := h.call(user, "POST", "/api/v1/requests", body, &v); got != wantStatus {
		h.t.Fatalf("%s asks %v: status %d, want %d (state %q, reasons %q)", user, body, got, wantStatus, v.State, v.Decision.Reasons)
	}
	return v
}

// prodRequest is a valid prod request body (needs one sre-leads approval).
func prodRequest() map[string]any {
	return map[string]any{"service": "checkout", "env": "prod", "duration": "30m", "reason": "INC-42 checkout errors"}
}

func stagingRequest(d string) map[string]any {
	return map[string]any{"service": "checkout", "env": "staging", "duration": d, "reason": "debugging a flaky test"}
}

func criticalRequest() map[string]any {
	return map[string]any{"service": "checkout", "env": "critical", "duration": "30m", "reason": "INC-7 data repair"}
}

// grantFor asks as user for staging (auto-approved) and returns the grant.
func (h *harness) grantFor(user, d string) api.Grant {
	h.t.Helper()
	v := h.ask(user, stagingRequest(d), http.StatusCreated)
	if v.State != store.StateApproved || v.Grant == nil {
		h.t.Fatalf("staging request: state %q, grant %v; want approved with a grant", v.State, v.Grant)
	}
	return *v.Grant
}

// dialTail opens a tail as user and reads the "subscribed" message.
func (h *harness) dialTail(user, grantID string) (*websocket.Conn, *http.Response, error) {
	h.t.Helper()
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/v1/grants/" + grantID + "/tail"
	hdr := http.Header{"Authorization": {"Bearer " + h.token(user)}}
	conn, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		return nil, resp, err
	}
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil || first["type"] != "subscribed" {
		conn.Close()
		return nil, resp, errors.New("tail did not start with a subscribed message")
	}
	return conn, resp, nil
}

// closeOf reads from conn until it ends and returns the close frame.
func closeOf(t testing.TB, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce
		}
		t.Fatalf("tail ended without a close frame: %v", err)
	}
}

// events returns the audit events of an action (exact or "x.*").
func (h *harness) events(q audit.Query) []audit.Event {
	h.t.Helper()
	q.Limit = 1000
	page, err := h.audit.Search(context.Background(), q)
	if err != nil {
		h.t.Fatal(err)
	}
	return page.Items
}

// eventsWithin polls the trail every `every` until the events q finds
// satisfy ok, or timeout has passed; it returns the events last read and
// whether they did.
func (h *harness) eventsWithin(q audit.Query, timeout, every time.Duration, ok func([]audit.Event) bool) ([]audit.Event, bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := h.events(q)
		if ok(evs) {
			return evs, true
		}
		if time.Now().After(deadline) {
			return evs, false
		}
		time.Sleep(every)
	}
}
