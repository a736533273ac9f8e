package exitcode

import (
	"errors"
	"fmt"
)

// The exit codes, documented in the README.
const (
	OK      = 0
	Failure = 1
	Usage   = 2
	Denied  = 3
	Ended   = 4 // a grant expired or was revoked
	Aborted = 130
)

// Error carries an exit code through a command's error return. Err nil
// means the command already said what happened: exit without a message.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef is a usage error (exit 2) with a message.
func Usagef(format string, a ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, a...)}
}

// Of is the code the process exits with for err, and whether the error
// still has to be printed.
func Of(err error) (code int, print bool) {
	if err == nil {
		return OK, false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Err != nil
	}
	return Failure, true
}
