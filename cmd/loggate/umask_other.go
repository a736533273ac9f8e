//go:build !unix

package main

// privateUmask does nothing where there is no umask; files are created
// with the modes loggate asks for.
func privateUmask() {}
