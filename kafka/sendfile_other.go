//go:build !linux

package kafka

import (
	"errors"
	"syscall"
)

// sendfileSupported is false here: fetched records are copied.
const sendfileSupported = false

func sendfile(syscall.RawConn, int, int64, int64) error {
	return errors.New("sendfile is only used on Linux")
}
