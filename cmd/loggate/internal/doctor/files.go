package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/loggate/loggate/policy"
)

// DiskFree is the free space of the file system holding a path.
type DiskFree func(path string) (free, total uint64, err error)

// CheckDisk warns below 1 GiB or 5 % free under dir and fails below
// 100 MiB: the audit trail and the backlog must be able to commit, and a
// full disk turns into refused grants (fail closed).
func CheckDisk(dir string, free DiskFree) Result {
	const check = "disk space"
	if free == nil {
		free = diskFree
	}
	f, total, err := free(dir)
	if err != nil {
		return warn(check, "", "cannot read free space of %s: %v", dir, err)
	}
	fix := fmt.Sprintf("free space on the file system of %s, or lower --log-retention / --audit-retention", dir)
	switch {
	case f < 100<<20:
		return fail(check, fix, "%s has %s free: audit commits will fail soon, and grants with them", dir, bytesIEC(f))
	case f < 1<<30 || (total > 0 && f*20 < total):
		return warn(check, fix, "%s has %s free of %s", dir, bytesIEC(f), bytesIEC(total))
	}
	return ok(check, "%s has %s free of %s", dir, bytesIEC(f), bytesIEC(total))
}

func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// CheckPolicy compiles the policies (dir, else fsys) and runs their Rego
// tests, as serve does at start.
func CheckPolicy(ctx context.Context, dir string, fsys fs.FS) Result {
	const check = "policy"
	what := "the embedded policies"
	cfg := policy.Config{FS: fsys, RunTestsOnLoad: true}
	if dir != "" {
		cfg.Dir, what = dir, dir
	}
	e, err := policy.New(ctx, cfg)
	if err != nil {
		return fail(check, "run `loggate policy test "+dir+"` and fix what it reports", "%s: %v", what, err)
	}
	return ok(check, "%s compile and their tests pass (revision %s)", what, e.Revision())
}

// CheckTLSCert loads the certificate pair and looks at the leaf's expiry:
// expired or not yet valid fails, under 14 days warns.
func CheckTLSCert(certFile, keyFile string, now time.Time) Result {
	const check = "tls certificate"
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fail(check, "point --tls-cert and --tls-key at a matching PEM certificate and key", "%v", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fail(check, "replace the certificate", "%s: %v", certFile, err)
		}
	}
	left := leaf.NotAfter.Sub(now)
	renew := "renew the certificate (loggate picks up the new files without a restart)"
	switch {
	case now.Before(leaf.NotBefore):
		return fail(check, "check the clock, or wait until the certificate is valid", "%s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		return fail(check, renew, "%s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < 14*24*time.Hour:
		return warn(check, renew, "%s expires in %s (%s)", certFile, left.Round(time.Hour), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return ok(check, "%s valid until %s (%d days)", certFile, leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
}

// CheckCABundle looks at every certificate of a PEM CA bundle (the source
// CA of mTLS sources): none parses or one has expired fails, one expiring
// within 30 days warns — sources it issued stop authenticating then.
func CheckCABundle(path string, now time.Time) Result {
	const check = "source CA"
	b, err := os.ReadFile(path)
	if err != nil {
		return fail(check, "point --source-ca-file at the PEM bundle of the CA issuing source certificates", "%v", err)
	}
	var soonest *x509.Certificate
	n := 0
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fail(check, "replace the bundle", "%s: certificate %d: %v", path, n+1, err)
		}
		n++
		if soonest == nil || c.NotAfter.Before(soonest.NotAfter) {
			soonest = c
		}
	}
	if n == 0 {
		return fail(check, "put the CA's PEM certificate(s) in "+path, "%s holds no PEM certificate", path)
	}
	renew := "add the CA's successor to the bundle before it expires (the bundle is re-read without a restart)"
	left := soonest.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return fail(check, renew, "%q in %s expired at %s", soonest.Subject.CommonName, path, soonest.NotAfter.UTC().Format(time.RFC3339))
	case left < 30*24*time.Hour:
		return warn(check, renew, "%q in %s expires in %s", soonest.Subject.CommonName, path, left.Round(time.Hour))
	}
	return ok(check, "%d certificate(s) in %s, the first to expire on %s", n, path, soonest.NotAfter.UTC().Format(time.RFC3339))
}
