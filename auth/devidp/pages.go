package devidp

import (
	"html/template"
	"net/http"
	"slices"
)

// Pages use no script, no inline style and nothing from other origins.
const pageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'"

const css = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#111;background:#fff}
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem;font-size:1rem;border:1px solid #555;border-radius:4px}
button{margin-top:1.25rem;margin-right:.5rem;padding:.5rem 1rem;font-size:1rem}
.error{color:#900;border:1px solid #900;padding:.5rem;border-radius:4px}.note{color:#444;font-size:.9rem}
:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}`

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · loggate development sign-in</title><link rel="stylesheet" href="static.css"></head><body><main>
{{end}}
{{define "foot"}}<p class="note">Development identity provider. Do not use in production.</p></main></body></html>{{end}}

{{define "login"}}{{template "head" "Sign in"}}
<h1>Sign in to {{.Client}}</h1>
{{if .Error}}<p class="error" role="alert" id="err">{{.Error}}</p>{{end}}
<form method="post" action="auth">
<input type="hidden" name="request" value="{{.Request}}">
<label for="username">Username</label>
<input id="username" name="username" value="{{.Username}}" autocomplete="username" required autofocus{{if .Error}} aria-describedby="err"{{end}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="note">The application asks for: {{range $i, $s := .Scopes}}{{if $i}}, {{end}}{{$s}}{{end}}.</p>
{{template "foot"}}{{end}}

{{define "device"}}{{template "head" "Sign in a device"}}
<h1>Sign in a device</h1>
{{if .Error}}<p class="error" role="alert" id="err">{{.Error}}</p>{{end}}
<form method="post" action="device">
<input type="hidden" name="csrf" value="{{.Token}}">
<label for="user_code">Code shown on your device</label>
<input id="user_code" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" required>
<label for="username">Username</label>
<input id="username" name="username" value="{{.Username}}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
{{template "foot"}}{{end}}

{{define "message"}}{{template "head" .Title}}
<h1>{{.Title}}</h1><p role="status">{{.Text}}</p>
{{template "foot"}}{{end}}
`))

type loginView struct {
	Client, Request, Username, Error string
	Scopes                           []string
}

type deviceView struct{ UserCode, Username, Token, Error string }

type messageView struct{ Title, Text string }

func (p *Provider) render(w http.ResponseWriter, status int, name string, v any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer Chromium posts this
	// page's forms with "Origin: null", which hides where they came from.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		p.log.Error("devidp: render page", "page", name, "err", err)
	}
}

func (p *Provider) renderLogin(w http.ResponseWriter, status int, v loginView) {
	p.render(w, status, "login", v)
}

func (p *Provider) renderDevice(w http.ResponseWriter, status int, v deviceView) {
	p.render(w, status, "device", v)
}

func (p *Provider) errorPage(w http.ResponseWriter, status int, title, text string) {
	p.render(w, status, "message", messageView{title, text})
}

func (p *Provider) messagePage(w http.ResponseWriter, title, text string) {
	p.render(w, http.StatusOK, "message", messageView{title, text})
}

func serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "max-age=3600")
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(css))
	}
}

// handleLogout is the RP-initiated logout endpoint. The provider keeps no
// login session, so there is nothing to clear; it redirects only to a
// post_logout_redirect_uri registered for the client named by client_id or
// by the audience of a valid id_token_hint.
func (p *Provider) handleLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, "GET, POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Bad request", "The logout request could not be read.")
		return
	}
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		claims, err := p.verify(hint, typIDToken) // an expired hint is fine
		aud, _ := claims["aud"].(string)
		if err != nil || (clientID != "" && clientID != aud) {
			clientID = ""
		} else {
			clientID = aud
		}
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if c := p.clients[clientID]; c != nil && target != "" && slices.Contains(c.PostLogoutRedirectURIs, target) {
		http.Redirect(w, r, redirectWith(target, map[string]string{"state": r.Form.Get("state")}), http.StatusFound)
		return
	}
	p.messagePage(w, "Signed out", "You are signed out. You can close this page.")
}
