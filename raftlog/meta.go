package raftlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"

	"github.com/cairnlog/cairn/storage/vfs"
)

// raft-meta layout. Part of the format; see doc.go for the diagram.
const (
	metaMagic         = 0x43524e52 // "CRNR"
	metaFormatVersion = 1
	metaHeaderBytes   = 40
	// recordHeaderBytes: CRC u32, length u32, type u8.
	recordHeaderBytes = 9
	// recordBytesMax bounds a record's length field (type and body), checked
	// before anything is sliced or allocated for it. It bounds what one
	// record holds: a non-data entry's data just under 1 MiB, about 43,000
	// term boundaries in a Snapshot record. appendRecord refuses more, so no
	// record is written that a reader would reject.
	recordBytesMax = 1 << 20
)

// RecordType says what a raft-meta record body holds. Part of the format.
type RecordType uint8

// Record types; the values are part of the format.
const (
	RecordEntry    RecordType = 1
	RecordTruncate RecordType = 2
	RecordSnapshot RecordType = 3
	RecordAnchor   RecordType = 4
	RecordSynced   RecordType = 5
)

// EntryKind says what a non-data entry is. Part of the format.
type EntryKind uint8

// Entry kinds; the values are part of the format (design §1.5).
const (
	// KindEmpty is a new leader's first entry; it starts its term.
	KindEmpty        EntryKind = 0
	KindConfChange   EntryKind = 1
	KindConfChangeV2 EntryKind = 2
	// KindCommand is a partition command (Data[0] >= 0x80).
	KindCommand EntryKind = 3
	// KindNoop is an empty normal entry in the middle of a term: raft
	// replaces a conf change it refuses by one (design §1.5). It carries
	// the term already in force and an explicit Type, as raft makes it.
	KindNoop     EntryKind = 4
	entryKindMax           = KindNoop
)

// MetaHeader opens every raft-meta file.
type MetaHeader struct {
	GroupID   uint64 // 0 is the meta group
	ReplicaID uint64
	// Generation grows by one at every rewrite of the file.
	Generation uint32
	// WrittenBytes is the size of the file as written (and synced) by the
	// create or rewrite that produced it, header included: those bytes are
	// before the recovery point whatever raft-state says.
	WrittenBytes int64
	// ResetSegments is set on the file an installed snapshot wrote when
	// the segments restart empty at its next offset. Until raft-state
	// names this file's generation the reset may not have happened, and
	// Open does it (see Log.ApplySnapshot).
	ResetSegments bool
}

// metaFlagResetSegments is MetaHeader.ResetSegments in the header's flags.
const metaFlagResetSegments = 1 << 0

// Record is one raft-meta record: *Entry, *Truncate, *Snapshot, *Anchor or
// *Synced.
type Record interface {
	Type() RecordType
	appendBody(b []byte) []byte
}

// Entry is a non-data Raft entry, stored whole with the Kafka offset it
// precedes.
type Entry struct {
	Index, Term uint64
	Kind        EntryKind
	NextOffset  int64
	Data        []byte
}

// Truncate voids every entry and anchor at or above Index; the segments
// were cut to NextOffset.
type Truncate struct {
	Index      uint64
	NextOffset int64
}

// TermStart is where a term begins: the index of its first entry (the
// leader's empty entry) and the Kafka offset that entry precedes.
type TermStart struct {
	Term, Index uint64
	Offset      int64
}

// Snapshot describes the compaction point: everything at or below Index is
// gone from the log.
type Snapshot struct {
	Index, Term    uint64
	NextOffset     int64 // Kafka offset after entry Index
	LogStartOffset int64
	ConfState      []byte // raftpb.ConfState, marshalled
	// Terms are the term boundaries at or below Index, ascending.
	Terms []TermStart
	// Legacy are the leader epochs of the partition before it was
	// replicated, ascending (design §1.8); none for a new partition.
	Legacy []LegacyEpoch
}

// Anchor says that the data batch stored at Kafka offset Offset is Raft
// entry Index.
type Anchor struct {
	Index  uint64
	Offset int64
}

// Synced says that the segments were synced up to NextOffset when it was
// written: a later Open that finds them ending below it found synced
// batches damaged, not a torn write. The last one in the file counts (a
// truncation writes a lower one before it cuts).
type Synced struct {
	NextOffset int64
}

func (*Entry) Type() RecordType    { return RecordEntry }
func (*Synced) Type() RecordType   { return RecordSynced }
func (*Truncate) Type() RecordType { return RecordTruncate }
func (*Snapshot) Type() RecordType { return RecordSnapshot }
func (*Anchor) Type() RecordType   { return RecordAnchor }

var be = binary.BigEndian

func (e *Entry) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, e.Index)
	b = be.AppendUint64(b, e.Term)
	b = append(b, byte(e.Kind))
	b = be.AppendUint64(b, uint64(e.NextOffset))
	b = be.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}

func (t *Truncate) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, t.Index)
	return be.AppendUint64(b, uint64(t.NextOffset))
}

func (s *Snapshot) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, s.Index)
	b = be.AppendUint64(b, s.Term)
	b = be.AppendUint64(b, uint64(s.NextOffset))
	b = be.AppendUint64(b, uint64(s.LogStartOffset))
	b = be.AppendUint32(b, uint32(len(s.ConfState)))
	b = append(b, s.ConfState...)
	b = be.AppendUint32(b, uint32(len(s.Terms)))
	for _, ts := range s.Terms {
		b = be.AppendUint64(b, ts.Term)
		b = be.AppendUint64(b, ts.Index)
		b = be.AppendUint64(b, uint64(ts.Offset))
	}
	// The legacy epochs are an optional tail: absent when there are none,
	// so the body of a new partition's record is as it always was.
	if len(s.Legacy) > 0 {
		b = be.AppendUint32(b, uint32(len(s.Legacy)))
		for _, e := range s.Legacy {
			b = be.AppendUint32(b, uint32(e.Epoch))
			b = be.AppendUint64(b, uint64(e.StartOffset))
		}
	}
	return b
}

func (a *Anchor) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, a.Index)
	return be.AppendUint64(b, uint64(a.Offset))
}

func (s *Synced) appendBody(b []byte) []byte {
	return be.AppendUint64(b, uint64(s.NextOffset))
}

// encodeMetaHeader returns the header bytes of a raft-meta file.
func encodeMetaHeader(h MetaHeader) []byte {
	b := make([]byte, 0, metaHeaderBytes)
	b = be.AppendUint32(b, metaMagic)
	b = be.AppendUint16(b, metaFormatVersion)
	var flags uint16
	if h.ResetSegments {
		flags |= metaFlagResetSegments
	}
	b = be.AppendUint16(b, flags)
	b = be.AppendUint64(b, h.GroupID)
	b = be.AppendUint64(b, h.ReplicaID)
	b = be.AppendUint64(b, uint64(h.WrittenBytes))
	b = be.AppendUint32(b, h.Generation)
	return be.AppendUint32(b, crcOf(b))
}

// decodeMetaHeader parses the header at the start of b. Errors wrap
// ErrVersion or ErrInvalid.
func decodeMetaHeader(b []byte) (MetaHeader, error) {
	if len(b) < metaHeaderBytes {
		return MetaHeader{}, fmt.Errorf("header of %d bytes, want %d: %w", len(b), metaHeaderBytes, ErrInvalid)
	}
	if magic := be.Uint32(b[0:]); magic != metaMagic {
		return MetaHeader{}, fmt.Errorf("magic %#x: %w", magic, ErrInvalid)
	}
	body := b[:metaHeaderBytes-4]
	if stored, computed := be.Uint32(b[len(body):]), crcOf(body); stored != computed {
		return MetaHeader{}, fmt.Errorf("header crc32c stored %#08x, computed %#08x: %w", stored, computed, ErrInvalid)
	}
	// The header's layout is fixed across versions (magic, version, CRC
	// at the end), so the CRC is checked first: a damaged version field is
	// damage, not a newer file.
	if version := be.Uint16(b[4:]); version != metaFormatVersion {
		return MetaHeader{}, fmt.Errorf("format version %d, want %d: %w", version, metaFormatVersion, ErrVersion)
	}
	flags := be.Uint16(b[6:])
	if flags&^metaFlagResetSegments != 0 {
		return MetaHeader{}, fmt.Errorf("unknown flags %#x: %w", flags, ErrInvalid)
	}
	written := be.Uint64(b[24:])
	if written < metaHeaderBytes || written > math.MaxInt64 {
		return MetaHeader{}, fmt.Errorf("written bytes %d: %w", written, ErrInvalid)
	}
	return MetaHeader{
		GroupID:       be.Uint64(b[8:]),
		ReplicaID:     be.Uint64(b[16:]),
		WrittenBytes:  int64(written),
		Generation:    be.Uint32(b[32:]),
		ResetSegments: flags&metaFlagResetSegments != 0,
	}, nil
}

// appendRecord appends the framed record r to b: CRC32C of everything
// after it, length of type and body, type, body. A body that would exceed
// recordBytesMax is a programmer error (callers bound what they store).
func appendRecord(b []byte, r Record) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, recordHeaderBytes-1)...)
	b = append(b, byte(r.Type()))
	b = r.appendBody(b)
	length := len(b) - start - (recordHeaderBytes - 1)
	if length > recordBytesMax {
		return b[:start], fmt.Errorf("encode %s record: %d bytes, max %d", r.Type(), length, recordBytesMax)
	}
	be.PutUint32(b[start+4:], uint32(length))
	be.PutUint32(b[start:], crcOf(b[start+4:]))
	return b, nil
}

func (t RecordType) String() string {
	switch t {
	case RecordEntry:
		return "Entry"
	case RecordTruncate:
		return "Truncate"
	case RecordSnapshot:
		return "Snapshot"
	case RecordAnchor:
		return "Anchor"
	case RecordSynced:
		return "Synced"
	}
	return fmt.Sprintf("RecordType(%d)", uint8(t))
}

// ReadMetaHeader reads the header of the raft-meta file in dir: the group
// and replica the directory belongs to, readable when raft-state is not.
func ReadMetaHeader(fsys vfs.FS, dir string) (MetaHeader, error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, metaFileName))
	if err != nil {
		return MetaHeader{}, err
	}
	return decodeMetaHeader(b)
}
