package web

import (
	"html/template"
	"log/slog"
	"net/http"
)

// Config configures the UI.
type Config struct {
	// Logger receives rendering errors. If nil, discard.
	Logger *slog.Logger
}

// UI serves the browser pages.
type UI struct {
	log  *slog.Logger
	home *template.Template
	mux  *http.ServeMux
}

// New builds the UI handler.
func New(cfg Config) (*UI, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t, err := template.New("home").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loggate</title></head>
<body><h1>loggate</h1><p><a href="/login">Sign in</a></p></body></html>`)
	if err != nil {
		return nil, err
	}
	u := &UI{log: cfg.Logger, home: t, mux: http.NewServeMux()}
	u.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := u.home.Execute(w, nil); err != nil {
			u.log.Error("render home", "err", err)
		}
	})
	return u, nil
}

// ServeHTTP implements http.Handler.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.mux.ServeHTTP(w, r) }
