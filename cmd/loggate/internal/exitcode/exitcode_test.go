package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCode  int
		wantPrint bool
	}{
		{"nil", nil, OK, false},
		{"plain error", errors.New("boom"), Failure, true},
		{"usage", Usagef("bad %s", "flag"), Usage, true},
		{"silent", &Error{Code: Aborted}, Aborted, false},
		{"wrapped", fmt.Errorf("tail: %w", &Error{Code: Ended, Err: errors.New("revoked")}), Ended, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, print := Of(tt.err)
			if code != tt.wantCode || print != tt.wantPrint {
				t.Errorf("Of(%v) = %d, %v; want %d, %v", tt.err, code, print, tt.wantCode, tt.wantPrint)
			}
		})
	}
}
