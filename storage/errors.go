package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairnlog/cairn/batch"
)

var (
	// ErrOffsetOutOfRange: the offset is below the log start offset or above
	// the log end offset.
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrNotFound: no batch or segment matches the request.
	ErrNotFound = errors.New("storage: not found")
	// ErrFailed: a sync or a repair after a failed write did not succeed, so
	// the state on disk is unknown. The log refuses every later mutation and
	// Sync; only reopening it (which runs recovery) clears the condition.
	ErrFailed = errors.New("storage: log failed")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("storage: log closed")
	// ErrInvalidBatches: the bytes given to Append or ReplaceSegment are not
	// whole, valid batches with the required offsets. Nothing was written.
	ErrInvalidBatches = errors.New("storage: invalid batches")
)

// CorruptionError reports damage that recovery must not repair by
// truncation: bytes before the recovery point (which were synced and may have
// been acknowledged) are missing or invalid, or the state file is unreadable.
// The partition must stop until an operator intervenes.
type CorruptionError struct {
	Dir    string
	Detail string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("storage: corruption in %s: %s", e.Dir, e.Detail)
}

func corruption(dir string, format string, args ...any) *CorruptionError {
	return &CorruptionError{Dir: dir, Detail: fmt.Sprintf(format, args...)}
}

// IsDamage reports errors of a read, an Open or a Verify that mean the
// stored bytes are damaged (not valid batches, out of place, cut short,
// or a *CorruptionError), as opposed to a read that failed and may pass.
func IsDamage(err error) bool {
	var corruption *CorruptionError
	return errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrShort) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &corruption)
}
