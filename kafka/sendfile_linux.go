package kafka

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

const sendfileSupported = true

// sendfile sends length bytes at offset of the file descriptor in to the
// socket, waiting for it to take them as the runtime's poller does for
// writes (so the connection's write deadline holds). The file's own offset
// is not used, so sections of one file go out on many connections at once.
func sendfile(dst syscall.RawConn, in int, offset, length int64) error {
	var sendErr error
	err := dst.Write(func(out uintptr) bool {
		for length > 0 {
			n, err := unix.Sendfile(int(out), in, &offset, int(min(length, 1<<30)))
			if n > 0 {
				length -= int64(n)
			}
			switch {
			case err == unix.EAGAIN:
				return false // wait until the socket takes more
			case err == unix.EINTR:
				continue
			case err != nil:
				sendErr = err
				return true
			case n == 0: // the file is shorter than the section
				sendErr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return sendErr
}
