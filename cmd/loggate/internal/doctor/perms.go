package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Path is a file or directory whose mode and owner are checked.
type Path struct {
	Path string
	// Dir says the path is a directory (wanted mode 0700); otherwise a
	// secret file (wanted 0600 or stricter).
	Dir bool
	// What names it in messages, e.g. "data directory", "encryption key file".
	What string
	// Optional paths may be missing; others fail when missing.
	Optional bool
}

// Owner reports the uid owning fi, and whether the platform tells.
type Owner func(fi fs.FileInfo) (uid int, known bool)

// PermissionsConfig says what CheckPermissions looks at.
type PermissionsConfig struct {
	Paths []Path
	// UID is the running user; files must be owned by it. If negative,
	// ownership is not checked.
	UID int
	// Owner reads a file's owner. If nil, the platform's (fileOwner).
	Owner Owner
}

// SecretsIn lists every regular file under dir, recursively, as a secret
// Path (used for the data directory's keys/ folder). A missing dir gives
// none.
func SecretsIn(dir, what string) []Path {
	var out []Path
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		switch {
		case d.IsDir():
			out = append(out, Path{Path: p, Dir: true, What: what + " directory", Optional: true})
		case d.Type().IsRegular():
			out = append(out, Path{Path: p, What: what, Optional: true})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// CheckPermissions checks each path: a directory must give group and
// others nothing (0700), a secret file likewise (0600 or stricter), and
// both must belong to the running user. A symlink is followed (Kubernetes
// mounts secrets as links); the target's mode is what counts.
func CheckPermissions(cfg PermissionsConfig) []Result {
	const check = "permissions"
	owner := cfg.Owner
	if owner == nil {
		owner = fileOwner
	}
	var rs []Result
	for _, p := range cfg.Paths {
		fi, err := os.Stat(p.Path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p.Optional {
				continue
			}
			rs = append(rs, fail(check, fmt.Sprintf("create it or correct the path of the %s", p.What),
				"%s %s: %v", p.What, p.Path, err))
			continue
		}
		want := fs.FileMode(0o600)
		if p.Dir {
			want = 0o700
		}
		if p.Dir != fi.IsDir() {
			kind := "a file"
			if p.Dir {
				kind = "a directory"
			}
			rs = append(rs, fail(check, "point the setting at "+kind, "%s %s is not %s", p.What, p.Path, kind))
			continue
		}
		mode := fi.Mode().Perm()
		bad := false
		if mode&0o077 != 0 {
			bad = true
			rs = append(rs, fail(check, fmt.Sprintf("chmod %o %s", want, shellQuote(p.Path)),
				"%s %s has mode %04o: group or others may %s it", p.What, p.Path, mode, access(mode, p.Dir)))
		}
		if uid, known := owner(fi); known && cfg.UID >= 0 && uid != cfg.UID {
			bad = true
			rs = append(rs, fail(check, fmt.Sprintf("chown %d %s (or run loggate as uid %d)", cfg.UID, shellQuote(p.Path), uid),
				"%s %s is owned by uid %d, but loggate runs as uid %d", p.What, p.Path, uid, cfg.UID))
		}
		if !bad {
			rs = append(rs, ok(check, "%s %s is %04o and ours", p.What, p.Path, mode))
		}
	}
	return rs
}

// access says what group/others may do, in words.
func access(mode fs.FileMode, dir bool) string {
	switch {
	case mode&0o044 != 0 && dir:
		return "list"
	case mode&0o044 != 0:
		return "read"
	case mode&0o022 != 0:
		return "write"
	}
	return "enter"
}

// shellQuote quotes p for a copy-pasted shell command when it needs it.
func shellQuote(p string) string {
	for _, r := range p {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			out := "'"
			for _, r := range p {
				if r == '\'' {
					out += `'\''`
				} else {
					out += string(r)
				}
			}
			return out + "'"
		}
	}
	return p
}
