package raftlog

import (
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/storage"
)

var (
	// ErrStateMissing: there is no raft-state file. Whether that is fine (a
	// directory never replicated) or corruption (segments without it) is
	// the caller's call.
	ErrStateMissing = errors.New("raftlog: raft-state missing")
	// ErrInvalid: a raft-state or raft-meta header does not hold a valid
	// encoding (short, bad magic, bad CRC, a field out of bounds).
	ErrInvalid = errors.New("raftlog: invalid encoding")
	// ErrVersion: the file carries a format version this code does not
	// read, typically written by a newer release. Not damage: nothing may be
	// cut or rewritten because of it.
	ErrVersion = errors.New("raftlog: unsupported format version")
	// ErrSnapshotDataMissing: ApplySnapshot refused a snapshot whose data
	// below it the log neither holds nor has a complete staged copy of (or
	// whose staged copy is damaged or unreadable), on a log that installs
	// such a snapshot only with its data (RequireStagedData). Nothing was
	// written.
	ErrSnapshotDataMissing = errors.New("raftlog: the data below the snapshot is not staged")
	// errTornRecord is wrapped by the reason a raft-meta tail after the
	// recovery point was cut.
	errTornRecord = errors.New("torn record")
)

// corruption reports damage that must not be repaired by truncation:
// raft-meta bytes before its recovery point (synced, possibly acknowledged)
// are missing or invalid. It is the storage layer's CorruptionError, so one
// check covers damage to the segments and to the Raft files: the replica
// must stop and never vote again under its identity (design §5.4).
func corruption(name string, format string, args ...any) *storage.CorruptionError {
	return &storage.CorruptionError{Dir: name, Detail: fmt.Sprintf(format, args...)}
}
