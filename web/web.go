package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the UI.
type Config struct {
	// Logger receives rendering errors. If nil, discard.
	Logger *slog.Logger
	// ProductName is shown in titles and the header. If empty, "loggate".
	ProductName string
}

// UI serves the browser pages and their static assets.
type UI struct {
	log    *slog.Logger
	name   string
	pages  map[string]*template.Template // page name -> layout + page; read-only after New
	static http.Handler
	mux    *http.ServeMux
}

// page describes one server-rendered shell.
type page struct {
	name   string // template file without .html, and the nav key
	title  string
	script string // module under /static, without .js
}

var pageList = []page{
	{"home", "Access", "home"},
	{"inbox", "Approvals", "inbox"},
	{"viewer", "Live viewer", "viewer"},
	{"request", "Request", "request"},
	{"security", "Security", "security"},
	{"alerts", "Alerts", "alerts"},
	{"admin", "Admin", "admin"},
	{"notfound", "Not found", ""},
}

// pageData is what every page template receives.
type pageData struct {
	Product string
	Title   string
	Nav     string // active nav entry
	Script  string // "/static/x.js" or ""
	ID      string // grant or request id from the path, validated
}

// idRE is what a grant or request id in a page path may look like; anything
// else is a 404 before any script runs.
var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// New builds the UI handler: it parses every embedded template up front so a
// broken template fails start-up, not a page view.
func New(cfg Config) (*UI, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "loggate"
	}
	u := &UI{log: cfg.Logger, name: cfg.ProductName, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout template: %w", err)
	}
	for _, p := range pageList {
		t, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone layout for %s: %w", p.name, err)
		}
		if _, err := t.ParseFS(templateFS, "templates/"+p.name+".html"); err != nil {
			return nil, fmt.Errorf("parse %s template: %w", p.name, err)
		}
		u.pages[p.name] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("static assets: %w", err)
	}
	u.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	u.routes()
	return u, nil
}

func (u *UI) routes() {
	m := u.mux
	m.HandleFunc("GET /{$}", u.show("home", "home"))
	m.HandleFunc("GET /inbox", u.show("inbox", "inbox"))
	m.HandleFunc("GET /security", u.show("security", "security"))
	m.HandleFunc("GET /alerts", u.show("alerts", "alerts"))
	m.HandleFunc("GET /admin", u.show("admin", "admin"))
	m.HandleFunc("GET /grants/{id}/view", u.show("viewer", "home"))
	m.HandleFunc("GET /requests/{id}", u.show("request", "home"))
	m.HandleFunc("GET /static/", u.handleStatic)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	m.HandleFunc("/", u.handleNotFound)
}

// ServeHTTP implements http.Handler.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.mux.ServeHTTP(w, r) }

func (u *UI) show(name, nav string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id != "" && !idRE.MatchString(id) {
			u.handleNotFound(w, r)
			return
		}
		u.render(w, http.StatusOK, name, nav, id)
	}
}

func (u *UI) handleNotFound(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	u.render(w, http.StatusNotFound, "notfound", "", "")
}

func (u *UI) render(w http.ResponseWriter, status int, name, nav, id string) {
	var p page
	for _, q := range pageList {
		if q.name == name {
			p = q
		}
	}
	d := pageData{Product: u.name, Title: p.title, Nav: nav, ID: id}
	if p.script != "" {
		d.Script = "/static/" + p.script + ".js"
	}
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		u.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Shells carry no data, but a cached page would outlive a sign-out.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (u *UI) handleStatic(w http.ResponseWriter, r *http.Request) {
	// Only plain asset names: the file server answers 500 for names the
	// embedded file system cannot hold (bad UTF-8 and the like).
	name := strings.TrimPrefix(r.URL.Path, "/static/")
	if name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) || !utf8.ValidString(name) || strings.Contains(name, "\\") {
		u.handleNotFound(w, r)
		return
	}
	// Assets change with the binary; a short cache keeps upgrades visible.
	w.Header().Set("Cache-Control", "public, max-age=300")
	u.static.ServeHTTP(w, r)
}
