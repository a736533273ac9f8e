package main

import (
	"context"
	"io"
)

// runClient runs the engineer's client commands (login, request, tail, ...).
func runClient(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return usageError("unknown command %q (run 'loggate help')", args[0])
}
