//go:build unix

package main

import "syscall"

// privateUmask makes every file serve creates (databases and their WAL
// files, sessions.json, keys, spools) 0600 and every directory 0700,
// including files created by libraries that pick 0644 themselves. The
// umask is process state; only serve sets it, once, in main's wiring.
func privateUmask() { syscall.Umask(0o077) }
