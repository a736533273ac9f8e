package main

import (
	"errors"
	"fmt"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// loadBacklogKeys reads the log backlog keys from --encryption-key-file or,
// without it, the key file's text in LOGGATE_ENCRYPTION_KEY. No key: nil,
// the backlog stays in clear.
func loadBacklogKeys(file, env string) (*seal.Ring, error) {
	switch {
	case file != "":
		r, err := seal.LoadFile(file)
		if err != nil {
			return nil, exitcode.Usagef("--encryption-key-file: %v", err)
		}
		return r, nil
	case env != "":
		r, err := seal.Parse([]byte(env))
		if err != nil {
			return nil, exitcode.Usagef("LOGGATE_ENCRYPTION_KEY: %v", err)
		}
		return r, nil
	}
	return nil, nil
}

// backlogKeyError adds what to do to a backlog sealed with a key that was
// not given.
func backlogKeyError(err error) error {
	var uk *seal.UnknownKeyError
	if !errors.As(err, &uk) {
		return err
	}
	return fmt.Errorf("%w\n  give the key file that holds key %s with --encryption-key-file (or LOGGATE_ENCRYPTION_KEY); "+
		"keys leave the file only after `loggate keys rotate-backlog` re-sealed what they sealed", err, uk.ID)
}
