package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/doctor"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/policies"
)

const doctorUsage = `Usage: loggate doctor [serve flags]

Checks a configuration before or while it runs, with the same flags,
LOGGATE_* environment and --config file as serve: permissions of --data and
the secret files, disk space, the identity provider (discovery, keys, issuer,
redirect URL, clock skew), Redis persistence, the policies and their tests,
the TLS certificate's expiry. Each check prints ok, warn or fail with a fix.

Exit codes: 0 every check passed, 1 a check failed, 2 warnings only.
`

// runDoctor is `loggate doctor`: the checks live in internal/doctor; this
// turns the serve configuration into what they look at.
func runDoctor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, doctorUsage)
		return nil
	}
	c, err := parseServeConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	rs := doctorChecks(ctx, c, time.Now)
	doctor.Print(stdout, rs)
	if code := doctor.ExitCode(rs); code != 0 {
		return &exitcode.Error{Code: code}
	}
	return nil
}

func doctorChecks(ctx context.Context, c *serveConfig, now func() time.Time) []doctor.Result {
	var rs []doctor.Result
	if _, err := os.Stat(c.Data); err == nil {
		perms := doctor.CheckPermissions(doctor.PermissionsConfig{Paths: permissionPaths(c), UID: os.Getuid()})
		if entries, err := os.ReadDir(c.Data); err == nil && len(entries) == 0 && len(perms) > 0 && perms[0].Status == doctor.Fail &&
			strings.Contains(perms[0].Fix, "chmod") {
			// serve makes an empty data directory 0700 itself (tightenEmptyDataDir).
			perms[0].Status = doctor.Warn
			perms[0].Detail += " (empty: serve will make it 0700)"
		}
		rs = append(rs, perms...)
		rs = append(rs, doctor.CheckDisk(c.Data, nil))
	} else {
		rs = append(rs, doctor.Result{Check: "data directory", Status: doctor.Warn,
			Detail: fmt.Sprintf("%s does not exist yet (serve creates it, mode 0700)", c.Data),
			Fix:    "create it owned by the service user, or let serve create it"})
		for _, p := range permissionPaths(c)[1:] {
			rs = append(rs, doctor.CheckPermissions(doctor.PermissionsConfig{Paths: []doctor.Path{p}, UID: os.Getuid()})...)
		}
	}

	switch {
	case c.Issuer != "":
		public := strings.TrimRight(c.PublicURL, "/")
		if public == "" {
			rs = append(rs, doctor.Result{Check: "public url", Status: doctor.Warn,
				Detail: "--public-url is not set: the redirect URL follows --listen",
				Fix:    "set --public-url to the URL users reach loggate at"})
			public = "http://" + c.Listen
		} else if u, err := url.Parse(public); err == nil && u.Scheme != "https" && !c.Dev {
			rs = append(rs, doctor.Result{Check: "public url", Status: doctor.Warn,
				Detail: public + " is not https: cookies are not Secure and there is no HSTS",
				Fix:    "serve TLS (--tls-cert) or put a TLS proxy in front and set --public-url https://…"})
		}
		rs = append(rs, doctor.CheckIdP(ctx, doctor.IdPConfig{Issuer: c.Issuer, ClientID: c.ClientID,
			RedirectURL: public + "/auth/callback", Now: now})...)
	case c.Dev:
		rs = append(rs, doctor.Result{Check: "idp", Status: doctor.Warn, Detail: "--dev: the built-in provider with demo users",
			Fix: "for production set --issuer and --client-id"})
	}

	if c.Redis != "" {
		client, err := cluster.Dial(c.Redis)
		if err != nil {
			rs = append(rs, doctor.Result{Check: "redis", Status: doctor.Fail, Detail: err.Error(), Fix: "fix --redis (redis:// or rediss:// URL)"})
		} else {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			rs = append(rs, doctor.CheckRedis(rctx, client, c.RedisAcceptWeakFsync)...)
			cancel()
			client.Close()
		}
	}

	rs = append(rs, doctor.CheckPolicy(ctx, c.Policies, policies.FS))
	if c.TLSCert != "" {
		rs = append(rs, doctor.CheckTLSCert(c.TLSCert, c.TLSKey, now()))
	}
	if c.SourceCAFile != "" {
		rs = append(rs, doctor.CheckCABundle(c.SourceCAFile, now()))
	}
	if c.SourceListen != "" {
		rs = append(rs, sourceListenCheck(c))
	}
	return rs
}

// sourceListenCheck reports --source-listen: an address that does not
// parse fails; ingest on its own port without TLS client certificates
// warns, that port being the one to expose to shippers.
func sourceListenCheck(c *serveConfig) doctor.Result {
	r := doctor.Result{Check: "source listener", Status: doctor.OK, Detail: "ingest served on " + c.SourceListen + ", not on " + c.Listen}
	switch _, err := checkListen(c, "--source-listen", c.SourceListen); {
	case err != nil:
		r.Status, r.Detail, r.Fix = doctor.Fail, err.Error(), "set --source-listen HOST:PORT"
	case c.SourceListen == c.Listen:
		r.Status, r.Detail, r.Fix = doctor.Fail, "--source-listen and --listen are the same address", "give sources a port of their own"
	case c.SourceCAFile == "":
		r.Status, r.Fix = doctor.Warn, "sources authenticate by token only; add --source-ca-file and --source-cert-map-file (and --source-require-both) for mTLS on the source port"
	}
	return r
}
