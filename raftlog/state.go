package raftlog

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"

	"github.com/cairnlog/cairn/storage/vfs"
)

// raft-state layout. Part of the format; see doc.go for the diagram.
const (
	stateMagic         = 0x43524e48 // "CRNH"
	stateFormatVersion = 1
	stateFlagClean     = 1 << 0
	stateFixedBytes    = 64 // everything before the ConfState
	stateCRCBytes      = 4
	// confStateBytesMax bounds the ConfState a reader accepts, so a damaged
	// length cannot make it allocate without limit. A ConfState lists
	// voters and learners (8 bytes and a tag each): 64 KiB is thousands.
	confStateBytesMax = 64 << 10
)

// castagnoli is the CRC32C table, the checksum the rest of storage uses.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// State is the content of raft-state: what raft must find again after a
// restart (term, vote), how far entries were applied, and which prefix of
// raft-meta is known synced.
type State struct {
	// Clean: written at a clean shutdown.
	Clean     bool
	GroupID   uint64
	ReplicaID uint64
	Term      uint64
	Vote      uint64
	// Applied is the last applied index; it is also reported as the commit
	// index at restart (never more than the real commit, never truncated).
	Applied uint64
	// MetaRecoveryPoint is the number of bytes at the start of the raft-meta
	// file of generation MetaGeneration known to be synced.
	MetaRecoveryPoint int64
	MetaGeneration    uint32
	// ConfState is the raftpb.ConfState as of Applied, marshalled; this
	// layer keeps it opaque.
	ConfState []byte
}

// encodeState returns s as raft-state bytes. A ConfState above
// confStateBytesMax or a negative recovery point is a programmer error.
func encodeState(s State) ([]byte, error) {
	if len(s.ConfState) > confStateBytesMax {
		return nil, fmt.Errorf("encode raft-state: ConfState of %d bytes, max %d", len(s.ConfState), confStateBytesMax)
	}
	if s.MetaRecoveryPoint < 0 {
		return nil, fmt.Errorf("encode raft-state: negative raft-meta recovery point %d", s.MetaRecoveryPoint)
	}
	b := make([]byte, stateFixedBytes, stateFixedBytes+len(s.ConfState)+stateCRCBytes)
	be.PutUint32(b[0:], stateMagic)
	be.PutUint16(b[4:], stateFormatVersion)
	if s.Clean {
		be.PutUint16(b[6:], stateFlagClean)
	}
	be.PutUint64(b[8:], s.GroupID)
	be.PutUint64(b[16:], s.ReplicaID)
	be.PutUint64(b[24:], s.Term)
	be.PutUint64(b[32:], s.Vote)
	be.PutUint64(b[40:], s.Applied)
	be.PutUint64(b[48:], uint64(s.MetaRecoveryPoint))
	be.PutUint32(b[56:], s.MetaGeneration)
	be.PutUint32(b[60:], uint32(len(s.ConfState)))
	b = append(b, s.ConfState...)
	return be.AppendUint32(b, crcOf(b)), nil
}

// decodeState parses raft-state bytes. Errors wrap ErrVersion for another
// format version and ErrInvalid for anything else that is not a valid
// encoding.
func decodeState(b []byte) (State, error) {
	if len(b) < stateFixedBytes+stateCRCBytes {
		return State{}, fmt.Errorf("%d bytes, want at least %d: %w", len(b), stateFixedBytes+stateCRCBytes, ErrInvalid)
	}
	if magic := be.Uint32(b[0:]); magic != stateMagic {
		return State{}, fmt.Errorf("magic %#x: %w", magic, ErrInvalid)
	}
	// The version decides the layout, so it is checked before the CRC,
	// whose place the layout gives.
	if version := be.Uint16(b[4:]); version != stateFormatVersion {
		return State{}, fmt.Errorf("format version %d, want %d: %w", version, stateFormatVersion, ErrVersion)
	}
	confBytes := be.Uint32(b[60:])
	if confBytes > confStateBytesMax {
		return State{}, fmt.Errorf("ConfState of %d bytes, max %d: %w", confBytes, confStateBytesMax, ErrInvalid)
	}
	if want := stateFixedBytes + int(confBytes) + stateCRCBytes; len(b) != want {
		return State{}, fmt.Errorf("%d bytes, want %d: %w", len(b), want, ErrInvalid)
	}
	body := b[:len(b)-stateCRCBytes]
	if stored, computed := be.Uint32(b[len(body):]), crcOf(body); stored != computed {
		return State{}, fmt.Errorf("crc32c stored %#08x, computed %#08x: %w", stored, computed, ErrInvalid)
	}
	flags := be.Uint16(b[6:])
	if flags&^stateFlagClean != 0 {
		return State{}, fmt.Errorf("unknown flags %#04x: %w", flags, ErrInvalid)
	}
	recoveryPoint := be.Uint64(b[48:])
	if recoveryPoint > math.MaxInt64 {
		return State{}, fmt.Errorf("raft-meta recovery point %d: %w", recoveryPoint, ErrInvalid)
	}
	return State{
		Clean:             flags&stateFlagClean != 0,
		GroupID:           be.Uint64(b[8:]),
		ReplicaID:         be.Uint64(b[16:]),
		Term:              be.Uint64(b[24:]),
		Vote:              be.Uint64(b[32:]),
		Applied:           be.Uint64(b[40:]),
		MetaRecoveryPoint: int64(recoveryPoint),
		MetaGeneration:    be.Uint32(b[56:]),
		ConfState:         append([]byte(nil), body[stateFixedBytes:]...),
	}, nil
}

// WriteState replaces the raft-state file name with s so that a crash
// leaves either the old or the new state, never a mixture.
func WriteState(fsys vfs.FS, name string, s State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(fsys, name, b); err != nil {
		return fmt.Errorf("write raft-state: %w", err)
	}
	return nil
}

// ReadState reads the raft-state file name. A missing file gives an error
// wrapping ErrStateMissing; otherwise errors wrap ErrVersion, ErrInvalid or
// the filesystem's error.
func ReadState(fsys vfs.FS, name string) (State, error) {
	b, err := vfs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, fmt.Errorf("read %s: %w", name, ErrStateMissing)
	}
	if err != nil {
		return State{}, fmt.Errorf("read raft-state: %w", err)
	}
	s, err := decodeState(b)
	if err != nil {
		return State{}, fmt.Errorf("read %s: %w", name, err)
	}
	return s, nil
}

// crcOf is the checksum of every raft-state and raft-meta field that has one.
func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
