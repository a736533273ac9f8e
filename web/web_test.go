package web

import (
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func newUI(t *testing.T) *UI {
	t.Helper()
	u, err := New(Config{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u
}

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestPages(t *testing.T) {
	u := newUI(t)
	tests := []struct {
		name, path string
		status     int
		script     string
		contains   []string
	}{
		{"home", "/", 200, "/static/home.js", []string{`id="ask"`, `id="ask-breakglass"`, `id="grants"`, `id="bg-dialog"`, `aria-current="page">Access`}},
		{"inbox", "/inbox", 200, "/static/inbox.js", []string{`id="inbox"`, `aria-current="page">Approvals`}},
		{"viewer", "/grants/grt_abc-1/view", 200, "/static/viewer.js", []string{`data-id="grt_abc-1"`, `id="log"`, `role="log" aria-live="off"`, `id="v-end"`, `id="v-pause"`}},
		{"request", "/requests/req_x1", 200, "/static/request.js", []string{`data-id="req_x1"`}},
		{"security", "/security", 200, "/static/security.js", []string{`id="search"`, `id="timeline-form"`, `id="export-csv"`, `id="reviews"`, `id="integrity"`}},
		{"alerts", "/alerts", 200, "/static/alerts.js", []string{`id="firing"`, `id="recent"`, `aria-current="page">Alerts`}},
		{"admin", "/admin", 200, "/static/admin.js", []string{`id="sources"`, `id="policy"`}},
		{"unknown path", "/nope", 404, "", []string{"Not found"}},
		{"id with bad characters", "/grants/a%22b/view", 404, "", []string{"Not found"}},
		{"request subpath", "/requests/x/y", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, u, "GET", tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
			}
			if got, want := resp.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if tt.script != "" && !strings.Contains(body, `<script type="module" src="`+tt.script+`"></script>`) {
				t.Errorf("page lacks module script %s", tt.script)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			// The gateway sends Referrer-Policy: no-referrer, under which a
			// browser posts forms with "Origin: null" and the CSRF check
			// refuses sign-out; the page's own policy keeps same-origin Origin.
			for _, s := range []string{`id="signin"`, `id="signin-link"`, `href="/login"`, `/static/style.css`, `<meta name="referrer" content="same-origin">`} {
				if !strings.Contains(body, s) {
					t.Errorf("layout lacks %q", s)
				}
			}
		})
	}
}

// The gateway's CSP forbids inline script and inline style; a page that used
// either would silently break in the browser.
func TestPagesHaveNoInlineScriptOrStyle(t *testing.T) {
	u := newUI(t)
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	for _, path := range []string{"/", "/inbox", "/grants/g1/view", "/requests/r1", "/security", "/admin", "/x"} {
		_, body := get(t, u, "GET", path)
		if m := inlineScript.FindString(body); m != "" {
			t.Errorf("%s has inline script %q", path, m)
		}
		for _, bad := range []string{" style=", "<style", " onclick=", " onload=", " onerror=", " onsubmit=", "javascript:"} {
			if strings.Contains(strings.ToLower(body), bad) {
				t.Errorf("%s contains %q, which the CSP blocks", path, bad)
			}
		}
		if n := strings.Count(body, "<script"); n > 1 {
			t.Errorf("%s has %d script tags, want at most 1", path, n)
		}
	}
}

// Every control in the page shells has a label, so the pages are usable by
// keyboard and screen reader.
func TestControlsAreLabelled(t *testing.T) {
	u := newUI(t)
	control := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttr := regexp.MustCompile(`\bid="([^"]+)"`)
	for _, path := range []string{"/", "/inbox", "/grants/g1/view", "/security", "/admin"} {
		_, body := get(t, u, "GET", path)
		for _, c := range control.FindAllString(body, -1) {
			if strings.Contains(c, `type="hidden"`) {
				continue
			}
			m := idAttr.FindStringSubmatch(c)
			if m == nil {
				t.Errorf("%s: control without id: %s", path, c)
				continue
			}
			if !strings.Contains(body, `for="`+m[1]+`"`) && !strings.Contains(c, "aria-label=") {
				t.Errorf("%s: control %q has no label", path, m[1])
			}
		}
	}
}

func TestStatic(t *testing.T) {
	u := newUI(t)
	tests := []struct {
		path   string
		status int
		ctype  string
	}{
		{"/static/style.css", 200, "text/css"},
		{"/static/app.js", 200, "text/javascript"},
		{"/static/viewer.js", 200, "text/javascript"},
		{"/static/favicon.svg", 200, "image/svg+xml"},
		{"/static/missing.js", 404, ""},
		{"/static/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, _ := get(t, u, "GET", tt.path)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.ctype == "" {
				return
			}
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if mt != tt.ctype {
				t.Errorf("Content-Type %q, want %s", resp.Header.Get("Content-Type"), tt.ctype)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	u := newUI(t)
	for _, path := range []string{"/", "/inbox", "/nope"} {
		resp, _ := get(t, u, "POST", path)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: status %d, want 405", path, resp.StatusCode)
		}
	}
}

// The scripts must never turn data into markup: no HTML sinks, no eval, no
// string timers, no external hosts.
func TestScriptsUseNoHTMLSinks(t *testing.T) {
	sinks := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\("|setInterval\("|https?://|createContextualFragment`)
	err := fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := sinks.FindString(line); m != "" {
				t.Errorf("%s:%d uses %q", path, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfigDefaults(t *testing.T) {
	u := newUI(t)
	_, body := get(t, u, "GET", "/")
	if !strings.Contains(body, "<title>Access · loggate</title>") {
		t.Errorf("default product name missing from title")
	}
	u2, err := New(Config{ProductName: "Acme <logs>"})
	if err != nil {
		t.Fatal(err)
	}
	_, body = get(t, u2, "GET", "/")
	if !strings.Contains(body, "Acme &lt;logs&gt;") || strings.Contains(body, "Acme <logs>") {
		t.Errorf("product name not escaped")
	}
}

// FuzzPaths: any path is answered with a page, a 404 or an asset, never a
// panic or a 5xx, and nothing from the path reaches the HTML unescaped.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"/", "/inbox", "/grants/g1/view", "/grants/<script>/view", "/requests/%3Cimg%3E",
		"/static/app.js", "/static/../web.go", "/static//style.css", "/a/b/c", "/grants//view"} {
		f.Add(s)
	}
	u, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n#?") {
			return
		}
		req, err := http.NewRequest("GET", "http://loggate.test"+path, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("GET %q: status %d", path, rec.Code)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") && strings.Contains(path, "<") &&
			strings.Contains(rec.Body.String(), req.URL.Path) && strings.Contains(req.URL.Path, "<") {
			t.Fatalf("GET %q: path reflected unescaped", path)
		}
	})
}
