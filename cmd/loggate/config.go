package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// serveConfig is every setting of `loggate serve`. Each comes from a flag,
// else the environment variable LOGGATE_<NAME> (upper case, '-' as '_'),
// else the JSON config file (--config, keys are the flag names), else its
// default. Secrets are never flags: they come from files or the environment.
type serveConfig struct {
	Config string
	Listen string
	// SourceListen, when set, serves the source routes there and not on
	// Listen (sourcelisten.go).
	SourceListen   string
	Data           string
	PublicURL      string
	Dev            bool
	DevAllowRemote bool
	DevSourceToken string
	DevDemoLogs    bool
	Policies       string

	Issuer           string
	ClientID         string
	ClientSecretFile string
	PublicClientID   string
	GroupsClaim      string
	GroupMapFile     string
	AllowedDomains   string
	SessionKeyFile   string
	SessionIdle      time.Duration
	SessionAbsolute  time.Duration

	TLSCert        string
	TLSKey         string
	TrustedProxies string
	AllowedOrigins string
	// SourceCAFile and SourceCertMapFile let sources authenticate with
	// client certificates (tlsconfig.go).
	SourceCAFile      string
	SourceCertMapFile string
	// SourceRequireBoth makes ingest need a source token and a mapped
	// client certificate together (gateway.Config.SourceAuthBoth).
	SourceRequireBoth bool

	Redis string
	// ControlStalenessBound is how long a replica may go without confirming
	// it has read the whole control stream before it ends its tails (--redis).
	ControlStalenessBound time.Duration
	RedisAcceptWeakFsync  bool
	// AuditSigningKeyFile is the Ed25519 key signing audit checkpoints;
	// required with --redis (every replica loads the same file).
	AuditSigningKeyFile string

	WebhookURL        string
	WebhookSecretFile string
	WebhookEvents     string
	WebhookFormat     string

	AuditCheckpointInterval time.Duration
	AuditOps                auditOps
	MaxTailsPerUser         int
	LogRetention            string
	TailProgressInterval    time.Duration
	ViewCountsInterval      time.Duration
	PolicyTimeout           time.Duration
	IdentityRecheck         time.Duration
	RedactionFile           string
	MaxTailsPerStream       int
	MaxViewerRate           int
	IngestRate              float64
	PublicAuditRate         float64
	PublicAuditBurst        float64
	LogLevel                string
	LogFormat               string

	// EncryptionKeyFile holds the backlog keys (backlogkeys.go).
	EncryptionKeyFile string
	// AllowOpenPermissions turns the start-up permission check's failures
	// into warnings (permissions.go).
	AllowOpenPermissions bool
	// CheckConfig validates and exits (checkconfig.go).
	CheckConfig bool

	// AlertRules and AlertmanagerURLs: serve_alerts.go.
	AlertRules       string
	AlertmanagerURLs urlList

	// clientSecret and webhookSecret are read from files or the environment.
	clientSecret  string
	webhookSecret string
	// backlogKeys seal the log backlog; nil keeps it in clear.
	backlogKeys *seal.Ring
	// credentialsDir is systemd's $CREDENTIALS_DIRECTORY: files in it are
	// readable by this unit's user only, whatever their mode shows.
	credentialsDir string
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Config, "config", "", "JSON configuration file (keys are flag names)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.SourceListen, "source-listen", "", "serve log ingest (OTLP/HTTP, Loki push, NDJSON, control levels) on this address instead of --listen, which then serves people only")
	fs.StringVar(&c.Data, "data", "./loggate-data", "directory for state, audit trail, keys and log backlog")
	fs.StringVar(&c.PublicURL, "public-url", "", "URL clients use to reach loggate (default: http(s)://<listen>)")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: built-in identity provider, demo users, demo log source")
	fs.BoolVar(&c.DevAllowRemote, "dev-allow-remote", false, "let --dev listen on a non-loopback address")
	fs.StringVar(&c.DevSourceToken, "dev-source-token", "", "fixed source token for both demo streams (--dev only)")
	fs.BoolVar(&c.DevDemoLogs, "dev-demo-logs", true, "with --dev, write demo logs for checkout/staging and checkout/prod")
	fs.StringVar(&c.Policies, "policies", "", "directory of Rego policies, hot-reloaded (default: the embedded policies)")
	fs.StringVar(&c.Issuer, "issuer", "", "OIDC issuer URL (required without --dev)")
	fs.StringVar(&c.ClientID, "client-id", "", "OIDC client id of the gateway (required without --dev)")
	fs.StringVar(&c.ClientSecretFile, "client-secret-file", "", "file holding the OIDC client secret (or LOGGATE_CLIENT_SECRET)")
	fs.StringVar(&c.PublicClientID, "public-client-id", "", "public client id the CLI uses (tokens for it are accepted too)")
	fs.StringVar(&c.GroupsClaim, "groups-claim", "groups", "ID token claim holding the user's groups")
	fs.StringVar(&c.GroupMapFile, "group-map-file", "", `JSON file mapping subject or email to groups, for providers that send none: {"alice@example.com":["engineers"]}`)
	fs.StringVar(&c.AllowedDomains, "allowed-email-domains", "", "comma-separated email domains allowed to sign in (default: any)")
	fs.StringVar(&c.SessionKeyFile, "session-key-file", "", "file of session keys, one per line, newest first (default: generated in --data)")
	fs.DurationVar(&c.SessionIdle, "session-idle", 8*time.Hour, "browser session idle lifetime")
	fs.DurationVar(&c.SessionAbsolute, "session-absolute", 24*time.Hour, "browser session absolute lifetime")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (serve HTTPS directly)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file")
	fs.StringVar(&c.SourceCAFile, "source-ca-file", "", "PEM CA bundle: log sources may authenticate with client certificates it issued (needs --tls-cert)")
	fs.StringVar(&c.SourceCertMapFile, "source-cert-map-file", "", `JSON mapping client certificates to streams: {"sources":[{"name":"..","dns":[".."],"uri":[".."],"email":[".."],"common_name":"..","streams":[{"service":"..","env":".."}]}]}`)
	fs.BoolVar(&c.SourceRequireBoth, "source-require-both", false, "ingest needs both a source token and a client certificate mapped to the stream (needs --source-ca-file); either alone is refused")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For is trusted")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated extra origins allowed to open tails")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL for shared state across replicas (redis:// or rediss://)")
	fs.StringVar(&c.AuditSigningKeyFile, "audit-signing-key-file", "", "Ed25519 key (PKCS#8 PEM) signing audit checkpoints (default: generated in --data; required with --redis, the same file on every replica)")
	fs.DurationVar(&c.ControlStalenessBound, "control-staleness-bound", 2*time.Second, "with --redis: a replica that cannot confirm it has read every control message (revocations, session ends, policy changes) for this long ends its tails with 4006, refuses new ones (503) and is not ready until it catches up; Redis calls time out at half of it")
	fs.BoolVar(&c.RedisAcceptWeakFsync, "redis-accept-weak-durability", false, "accept a Redis that does not fsync every write (managed Redis)")
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "URL receiving notifications (request created/approved/denied, break-glass, expiring, revoked)")
	fs.StringVar(&c.WebhookSecretFile, "webhook-secret-file", "", "file holding the webhook signing secret (or LOGGATE_WEBHOOK_SECRET)")
	fs.StringVar(&c.WebhookEvents, "webhook-events", "", "comma-separated event kinds to send (default: all)")
	fs.StringVar(&c.WebhookFormat, "webhook-format", "json", "webhook body: json (signed, Standard Webhooks headers) or slack")
	fs.DurationVar(&c.AuditCheckpointInterval, "audit-checkpoint-interval", time.Minute, "how often a signed audit checkpoint is written")
	c.AuditOps.flags(fs)
	c.alertFlags(fs)
	fs.StringVar(&c.RedactionFile, "redaction-file", "", "JSON file: disable or add redaction rules, per-environment profiles (see README)")
	fs.DurationVar(&c.TailProgressInterval, "tail-progress-interval", time.Minute, "how often a long view writes a stream.progress audit event")
	fs.DurationVar(&c.PolicyTimeout, "policy-timeout", time.Second, "longest one policy decision may take; past it the decision fails closed (deny)")
	fs.DurationVar(&c.ViewCountsInterval, "view-counts-interval", 5*time.Second, "how often a live view's counts are saved under --data (a crash loses at most this much of them)")
	fs.DurationVar(&c.IdentityRecheck, "identity-recheck-interval", 5*time.Minute, "how often a browser-opened tail re-checks its holder at the identity provider (refresh + policy)")
	fs.StringVar(&c.LogRetention, "log-retention", "prod=//24h", "backlog kept per environment for backfill and resume: ENV=ENTRIES/BYTES/AGE,... (ENV * is the default; empty parts keep 10000/16MiB/24h)")
	fs.IntVar(&c.MaxTailsPerUser, "max-tails-per-user", 8, "concurrent live tails per person")
	fs.IntVar(&c.MaxTailsPerStream, "max-tails-per-stream", 200, "concurrent live tails per stream")
	fs.IntVar(&c.MaxViewerRate, "max-viewer-rate", 5000, "entries per second a viewer receives before sampling (announced)")
	fs.Float64Var(&c.IngestRate, "ingest-rate", 200, "ingest requests per second per source token (burst twice that)")
	fs.Float64Var(&c.PublicAuditRate, "public-audit-rate", 2, "requests per second per client address (IPv6: per /64) to the unauthenticated audit checkpoint, keys and consistency endpoints; past it 429")
	fs.Float64Var(&c.PublicAuditBurst, "public-audit-burst", 20, "burst of --public-audit-rate (at least 1)")
	fs.StringVar(&c.EncryptionKeyFile, "encryption-key-file", "", "file of log backlog keys, newest first (`loggate keys generate`); seals logs.db and the Redis streams (or LOGGATE_ENCRYPTION_KEY)")
	fs.BoolVar(&c.CheckConfig, "check-config", false, "validate the configuration and the files it names, print \"configuration ok\" and exit (reaches no network; see loggate doctor)")
	fs.BoolVar(&c.AllowOpenPermissions, "allow-open-permissions", false, "start even when the data directory or a key/secret file is readable by others or owned by another user (containers that cannot set modes); each problem is logged")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
}

// parseServeConfig applies flags, then the environment and the config file
// for every flag not given on the command line.
func parseServeConfig(args []string, getenv func(string) string, stderr io.Writer) (*serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loggate serve [flags]\n\nExamples:\n  loggate serve --dev\n  loggate serve --issuer https://login.example.com --client-id loggate --public-url https://loggate.example.com\n\nFlags (each also LOGGATE_<FLAG> in the environment, or a key of --config):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, &exitcode.Error{Code: exitcode.OK}
		}
		return nil, &exitcode.Error{Code: exitcode.Usage, Err: err}
	}
	if fs.NArg() > 0 {
		return nil, exitcode.Usagef("serve takes no arguments, got %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var file map[string]any
	cfgPath := c.Config
	if cfgPath == "" {
		cfgPath = getenv("LOGGATE_CONFIG")
	}
	if cfgPath != "" {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
		if err := json.Unmarshal(b, &file); err != nil {
			return nil, fmt.Errorf("config file %s: %w", cfgPath, err)
		}
		for k := range file {
			if k == "check-config" {
				return nil, fmt.Errorf("config file %s: check-config is a command-line flag, not a setting", cfgPath)
			}
			if fs.Lookup(k) == nil {
				return nil, fmt.Errorf("config file %s: unknown setting %q", cfgPath, k)
			}
		}
	}
	var ferr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || ferr != nil || f.Name == "config" {
			return
		}
		env := "LOGGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				ferr = fmt.Errorf("%s: %w", env, err)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(fmt.Sprint(v)); err != nil {
				ferr = fmt.Errorf("config %s: %w", f.Name, err)
			}
		}
	})
	if ferr != nil {
		return nil, &exitcode.Error{Code: exitcode.Usage, Err: ferr}
	}
	c.credentialsDir = getenv("CREDENTIALS_DIRECTORY")
	if c.Redis == "" {
		c.Redis = getenv("LOGGATE_REDIS_URL") // the documented alias of LOGGATE_REDIS
	}
	var err error
	if c.clientSecret, err = secret(c.ClientSecretFile, getenv("LOGGATE_CLIENT_SECRET")); err != nil {
		return nil, fmt.Errorf("client secret: %w", err)
	}
	if c.webhookSecret, err = secret(c.WebhookSecretFile, getenv("LOGGATE_WEBHOOK_SECRET")); err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	if c.backlogKeys, err = loadBacklogKeys(c.EncryptionKeyFile, getenv("LOGGATE_ENCRYPTION_KEY")); err != nil {
		return nil, err
	}
	if c.DevSourceToken != "" && !c.Dev {
		return nil, exitcode.Usagef("--dev-source-token is for --dev only")
	}
	if !c.Dev && (c.Issuer == "" || c.ClientID == "") {
		return nil, exitcode.Usagef("without --dev, --issuer and --client-id are required (or LOGGATE_ISSUER, LOGGATE_CLIENT_ID)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, exitcode.Usagef("--tls-cert and --tls-key go together")
	}
	if !(c.PublicAuditRate > 0) || !(c.PublicAuditBurst >= 1) || math.IsInf(c.PublicAuditRate, 0) || math.IsInf(c.PublicAuditBurst, 0) {
		return nil, exitcode.Usagef("--public-audit-rate must be above 0 and --public-audit-burst at least 1 (got %v and %v)",
			c.PublicAuditRate, c.PublicAuditBurst)
	}
	return &c, nil
}

// secret reads a secret from a file (trailing newline trimmed) or falls back
// to the value from the environment.
func secret(file, env string) (string, error) {
	if file == "" {
		return env, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
