package devidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// approveDevice drives the verification page as a browser would.
func (e *env) approveDevice(t *testing.T, pageURL, userCode, user, pass, action string) (int, string) {
	t.Helper()
	resp, err := e.srv.Client().Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	m := hiddenCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("device page has no csrf token: %s", body)
	}
	form := url.Values{"csrf": {m[1]}, "user_code": {userCode}, "username": {user}, "password": {pass}, "action": {action}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/device", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	resp, err = e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}

func TestDeviceFlow(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DevicePollInterval = time.Second })
	cfg := e.oauth2(t, "cli", "openid", "groups")
	da, err := cfg.DeviceAuth(e.ctx(t))
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if da.Interval != 1 || !strings.HasPrefix(da.VerificationURIComplete, e.issuer+"/device?user_code=") || len(da.UserCode) != 9 {
		t.Fatalf("device response = %+v", da)
	}
	poll := func() string {
		_, body, _ := e.post(t, "/token", url.Values{"grant_type": {grantDeviceCode}, "client_id": {"cli"}, "device_code": {da.DeviceCode}})
		s, _ := body["error"].(string)
		return s
	}
	if got := poll(); got != "authorization_pending" {
		t.Errorf("first poll = %q, want authorization_pending", got)
	}
	if got := poll(); got != "slow_down" {
		t.Errorf("immediate second poll = %q, want slow_down", got)
	}
	e.clock.Advance(7 * time.Second) // the interval grew to 6s
	if got := poll(); got != "authorization_pending" {
		t.Errorf("poll after waiting = %q, want authorization_pending", got)
	}

	if status, _ := e.approveDevice(t, da.VerificationURI, da.UserCode, "alice", "wrong", "approve"); status != http.StatusUnauthorized {
		t.Errorf("approve with wrong password: status %d, want 401", status)
	}
	if status, _ := e.approveDevice(t, da.VerificationURI, "BBBB-BBBB", "alice", "alice", "approve"); status != http.StatusBadRequest {
		t.Errorf("approve unknown code: status %d, want 400", status)
	}
	// Lower case and without dash, as a person might type it.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	if status, body := e.approveDevice(t, da.VerificationURIComplete, typed, "bob", "bob", "approve"); status != http.StatusOK || !strings.Contains(body, "Device signed in") {
		t.Fatalf("approve: %d %s", status, body)
	}

	tok, err := cfg.DeviceAccessToken(e.ctx(t), da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	_, c := verifyID(t, e.verifier(t, "cli"), tok)
	if c.Sub != "dev-bob" || len(c.Groups) != 3 {
		t.Errorf("claims = %+v", c)
	}
	if got := poll(); got != "invalid_grant" {
		t.Errorf("poll after token = %q, want invalid_grant (device code used up)", got)
	}
}

func TestDeviceFlowEndings(t *testing.T) {
	tests := []struct {
		name string
		act  func(t *testing.T, e *env, da *oauth2.DeviceAuthResponse)
		want string
	}{
		{"denied", func(t *testing.T, e *env, da *oauth2.DeviceAuthResponse) {
			if status, _ := e.approveDevice(t, da.VerificationURI, da.UserCode, "alice", "alice", "deny"); status != http.StatusOK {
				t.Fatalf("deny: status %d", status)
			}
		}, "access_denied"},
		{"expired", func(t *testing.T, e *env, da *oauth2.DeviceAuthResponse) {
			e.clock.Advance(11 * time.Minute)
		}, "expired_token"},
		{"other client", func(t *testing.T, e *env, da *oauth2.DeviceAuthResponse) {}, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			da, err := e.oauth2(t, "cli", "openid").DeviceAuth(e.ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			tt.act(t, e, da)
			form := url.Values{"grant_type": {grantDeviceCode}, "client_id": {"cli"}, "device_code": {da.DeviceCode}}
			if tt.name == "other client" {
				form.Set("client_id", "web")
				form.Set("client_secret", webSecret)
			}
			status, body, _ := e.post(t, "/token", form)
			if status != http.StatusBadRequest || body["error"] != tt.want {
				t.Errorf("got %d %v, want 400 %s", status, body, tt.want)
			}
		})
	}
}

func TestDevicePageRefusesForgedForm(t *testing.T) {
	e := newEnv(t, nil)
	form := url.Values{"csrf": {"123.abc"}, "user_code": {"BBBB-BBBB"}, "username": {"alice"}, "password": {"alice"}, "action": {"approve"}}
	resp, err := e.srv.Client().PostForm(e.issuer+"/device", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status = %d, want 403", resp.StatusCode)
	}
}
