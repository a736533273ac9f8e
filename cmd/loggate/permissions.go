package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/doctor"
)

// permissionPaths is what `serve` and `doctor` check: the data directory
// (0700), the key files loggate keeps in it, and every secret file given
// by a setting (0600 or stricter), all owned by the running user.
func permissionPaths(c *serveConfig) []doctor.Path {
	ps := []doctor.Path{{Path: c.Data, Dir: true, What: "data directory"}}
	for _, dir := range []string{filepath.Join(c.Data, "keys"), filepath.Join(c.Data, "audit", "keys")} {
		for _, p := range doctor.SecretsIn(dir, "key file") {
			// Verifier (public) keys are meant to be shared.
			if !strings.HasSuffix(p.Path, ".pub") {
				ps = append(ps, p)
			}
		}
	}
	for _, s := range []struct{ path, what string }{
		{c.EncryptionKeyFile, "encryption key file (--encryption-key-file)"},
		{c.ClientSecretFile, "client secret file (--client-secret-file)"},
		{c.WebhookSecretFile, "webhook secret file (--webhook-secret-file)"},
		{c.SessionKeyFile, "session key file (--session-key-file)"},
		{c.AuditSigningKeyFile, "audit signing key file (--audit-signing-key-file)"},
		{c.TLSKey, "TLS private key (--tls-key)"},
	} {
		// systemd credentials (LoadCredential=) are root's files that an
		// ACL opens to this unit's user alone; their mode bits show the
		// ACL mask, so they are not judged by them.
		if s.path != "" && !inDir(c.credentialsDir, s.path) {
			ps = append(ps, doctor.Path{Path: s.path, What: s.what})
		}
	}
	return ps
}

// checkPermissions stops serve on a too-open or foreign file, naming it
// and the command that fixes it, unless --allow-open-permissions (for
// containers whose volumes cannot carry modes), which only warns.
func checkPermissions(c *serveConfig, log *slog.Logger) error {
	tightenEmptyDataDir(c.Data, log)
	rs := doctor.CheckPermissions(doctor.PermissionsConfig{Paths: permissionPaths(c), UID: os.Getuid()})
	var bad []string
	for _, r := range rs {
		if r.Status == doctor.OK {
			continue
		}
		if c.AllowOpenPermissions {
			log.Warn("permissions accepted by --allow-open-permissions", "problem", r.Detail, "fix", r.Fix)
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (fix: %s)", r.Detail, r.Fix))
	}
	if len(bad) > 0 {
		return fmt.Errorf("refusing to start: %s; or pass --allow-open-permissions where modes cannot be set (containers)",
			strings.Join(bad, "; "))
	}
	return nil
}

// inDir reports whether path lies inside dir (dir empty: never).
func inDir(dir, path string) bool {
	if dir == "" {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// tightenEmptyDataDir makes a data directory that holds nothing yet 0700,
// as serve would have created it: a directory made with `mkdir` (or a
// test's temporary directory) under a usual umask is 0755, and there is
// nothing in it to protect yet. A directory with content is left to the
// check, which stops serve.
func tightenEmptyDataDir(dir string, log *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) > 0 {
		return
	}
	if err := os.Chmod(dir, 0o700); err == nil {
		log.Info("empty data directory made private", "dir", dir, "was", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}
