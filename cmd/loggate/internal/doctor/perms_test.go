package doctor

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckPermissions runs the check on real files whose modes are set
// with chmod, one case each.
func TestCheckPermissions(t *testing.T) {
	uid := os.Getuid()
	tests := []struct {
		name    string
		dir     bool
		mode    fs.FileMode
		owner   int // -1: the real owner
		missing bool
		opt     bool
		want    Status
		wantFix string // substring of the fix
	}{
		{name: "private dir", dir: true, mode: 0o700, owner: -1, want: OK},
		{name: "private file", mode: 0o600, owner: -1, want: OK},
		{name: "read-only file", mode: 0o400, owner: -1, want: OK},
		{name: "world-readable dir", dir: true, mode: 0o755, owner: -1, want: Fail, wantFix: "chmod 700 "},
		{name: "group-readable file", mode: 0o640, owner: -1, want: Fail, wantFix: "chmod 600 "},
		{name: "world-writable file", mode: 0o602, owner: -1, want: Fail, wantFix: "chmod 600 "},
		{name: "someone else's file", mode: 0o600, owner: uid + 1, want: Fail, wantFix: "chown "},
		{name: "missing required", missing: true, owner: -1, want: Fail, wantFix: "correct the path"},
		{name: "missing optional", missing: true, opt: true, owner: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "it")
			if !tc.missing {
				if tc.dir {
					if err := os.Mkdir(p, 0o700); err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			cfg := PermissionsConfig{Paths: []Path{{Path: p, Dir: tc.dir, What: "thing", Optional: tc.opt}}, UID: uid}
			if tc.owner >= 0 {
				cfg.Owner = func(fs.FileInfo) (int, bool) { return tc.owner, true }
			}
			rs := CheckPermissions(cfg)
			if tc.missing && tc.opt {
				if len(rs) != 0 {
					t.Fatalf("got %v, want no result for a missing optional path", rs)
				}
				return
			}
			if len(rs) != 1 {
				t.Fatalf("got %d results %v, want 1", len(rs), rs)
			}
			r := rs[0]
			if r.Status != tc.want {
				t.Errorf("status = %v, want %v (%s)", r.Status, tc.want, r.Detail)
			}
			if !strings.Contains(r.Detail, p) {
				t.Errorf("detail %q does not name the file", r.Detail)
			}
			if !strings.Contains(r.Fix, tc.wantFix) || (tc.want == OK) != (r.Fix == "") {
				t.Errorf("fix = %q, want one containing %q", r.Fix, tc.wantFix)
			}
			if strings.HasPrefix(tc.wantFix, "chmod") && !strings.HasSuffix(r.Fix, p) {
				t.Errorf("fix %q does not end with the file", r.Fix)
			}
		})
	}
}

func TestCheckPermissionsFollowsSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "..data-secret")
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "secret")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	rs := CheckPermissions(PermissionsConfig{Paths: []Path{{Path: link, What: "secret"}}, UID: os.Getuid()})
	if Worst(rs) != Fail {
		t.Fatalf("a link to a 0644 file passed: %v", rs)
	}
}

func TestSecretsInListsNestedFiles(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(filepath.Join(keys, "sub"), 0o700)
	os.WriteFile(filepath.Join(keys, "a.key"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(keys, "sub", "b.key"), []byte("x"), 0o644)
	ps := SecretsIn(keys, "key file")
	var files []string
	for _, p := range ps {
		if !p.Dir {
			files = append(files, filepath.Base(p.Path))
		}
	}
	if strings.Join(files, ",") != "a.key,b.key" {
		t.Fatalf("files = %v, want a.key,b.key", files)
	}
	if got := Worst(CheckPermissions(PermissionsConfig{Paths: ps, UID: os.Getuid()})); got != Fail {
		t.Fatalf("worst = %v, want fail for sub/b.key 0644", got)
	}
	if SecretsIn(filepath.Join(dir, "none"), "x") != nil {
		t.Fatal("a missing directory listed paths")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		rs   []Result
		want int
	}{
		{nil, 0},
		{[]Result{{Status: OK}, {Status: OK}}, 0},
		{[]Result{{Status: OK}, {Status: Warn}}, 2},
		{[]Result{{Status: Warn}, {Status: Fail}, {Status: OK}}, 1},
	} {
		if got := ExitCode(tc.rs); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.rs, got, tc.want)
		}
	}
}
