package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/loggate/loggate/auth/devidp"
)

func TestDevProviderClient(t *testing.T) {
	if devProviderClient(nil, "https://x/dev/oidc") != nil {
		t.Error("a client without a provider")
	}
	// The issuer names a host nothing listens on: only in-process answers work.
	issuer := "https://loggate.invalid/dev/oidc"
	idp, err := devidp.New(devidp.Config{Issuer: issuer, Users: devidp.DemoUsers(), Clients: []devidp.Client{{ID: "loggate"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	c := devProviderClient(idp, issuer)

	resp, err := c.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery in-process: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"issuer":"`+issuer+`"`) {
		t.Errorf("discovery: %d %s", resp.StatusCode, body)
	}
	resp, err = c.PostForm(issuer+"/token", url.Values{"grant_type": {"password"}, "client_id": {"loggate"},
		"username": {"alice"}, "password": {"alice"}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"id_token"`) {
		t.Errorf("token (form body reaches the provider): %d %s", resp.StatusCode, body)
	}

	// Anything else goes over the network, including a look-alike prefix.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "network") }))
	defer other.Close()
	resp, err = c.Get(other.URL + "/dev/oidc/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "network" {
		t.Errorf("other host answered %q, want it sent over the network", body)
	}
	if _, err := c.Get("https://loggate.invalid/dev/oidc-evil/keys"); err == nil {
		t.Error("a sibling path of the issuer was served in-process")
	}
}
