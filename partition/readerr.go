package partition

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
)

// classifyReadError maps a failed storage read to the partition's
// vocabulary. Stored bytes that are not valid batches (a bit flip, two
// processes writing one segment, a file cut short) fail every later read
// the same way, so they take the partition offline: it is then reported
// (log line, metrics, /healthz, metadata) and refuses writes that nobody
// could read back. Any other failed read (an I/O error, which may pass)
// fails only that read.
func (p *Partition) classifyReadError(err error, offset int64) error {
	if storedBytesInvalid(err) {
		p.fail(fmt.Errorf("read at offset %d: %w", offset, err))
		return p.Err()
	}
	return fmt.Errorf("%w: %s-%d at %d: %v", ErrRead, p.topic, p.index, offset, err)
}

// storedBytesInvalid reports read errors that mean the stored log is damaged.
func storedBytesInvalid(err error) bool {
	var corruption *storage.CorruptionError
	return errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrShort) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corruption)
}
