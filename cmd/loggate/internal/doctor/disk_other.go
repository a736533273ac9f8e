//go:build !unix

package doctor

import "errors"

func diskFree(string) (uint64, uint64, error) {
	return 0, 0, errors.New("not supported on this platform")
}
