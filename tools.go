//go:build tools

// Package tools pins modules that are only used by tests or by packages
// still being written, so that `go mod tidy` keeps them in go.mod.
package tools

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/golang/snappy"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/gorilla/websocket"
	_ "github.com/open-policy-agent/opa/v1/rego"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	_ "go.opentelemetry.io/otel/sdk/log"
	_ "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	_ "golang.org/x/mod/sumdb/tlog"
	_ "golang.org/x/oauth2"
	_ "google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite"
)
