package raftlog

import (
	"errors"
	"fmt"
	"math"
)

// bodyReader decodes fixed-width fields from a record body; the first
// field that does not fit sets err and every later read returns zero.
type bodyReader struct {
	b   []byte
	err error
}

func (r *bodyReader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = fmt.Errorf("%s: %d bytes, %d left: %w", field, n, len(r.b), ErrInvalid)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *bodyReader) u8(field string) uint8 {
	if v := r.take(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *bodyReader) u32(field string) uint32 {
	if v := r.take(4, field); v != nil {
		return be.Uint32(v)
	}
	return 0
}

func (r *bodyReader) u64(field string) uint64 {
	if v := r.take(8, field); v != nil {
		return be.Uint64(v)
	}
	return 0
}

// offset reads a Kafka offset: an int64 that is never negative.
func (r *bodyReader) offset(field string) int64 {
	v := r.u64(field)
	if v > math.MaxInt64 && r.err == nil {
		r.err = fmt.Errorf("%s %d is negative: %w", field, int64(v), ErrInvalid)
	}
	return int64(v)
}

// bytes reads a u32 length and that many bytes, copied: the record must
// not keep the file's buffer alive. The length was bounded by the record
// length before anything is allocated.
func (r *bodyReader) bytes(field string) []byte {
	n := r.u32(field + " length")
	v := r.take(int(n), field)
	if v == nil || n == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// done reports the first error, or ErrInvalid when bytes are left over.
func (r *bodyReader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the body: %w", len(r.b), ErrInvalid)
	}
	return r.err
}

// decodeRecord parses a record body of type t. Errors wrap ErrInvalid.
func decodeRecord(t RecordType, body []byte) (Record, error) {
	r := &bodyReader{b: body}
	var rec Record
	switch t {
	case RecordEntry:
		e := &Entry{Index: r.u64("index"), Term: r.u64("term"), Kind: EntryKind(r.u8("kind"))}
		e.NextOffset = r.offset("next offset")
		e.Data = r.bytes("data")
		if r.err == nil && e.Kind > entryKindMax {
			r.err = fmt.Errorf("entry kind %d: %w", e.Kind, ErrInvalid)
		}
		rec = e
	case RecordTruncate:
		rec = &Truncate{Index: r.u64("index"), NextOffset: r.offset("next offset")}
	case RecordSnapshot:
		rec = decodeSnapshot(r)
	case RecordAnchor:
		rec = &Anchor{Index: r.u64("index"), Offset: r.offset("offset")}
	case RecordSynced:
		rec = &Synced{NextOffset: r.offset("next offset")}
	default:
		return nil, fmt.Errorf("record type %d: %w", uint8(t), ErrInvalid)
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("%s record: %w", t, err)
	}
	return rec, nil
}

// termStartBytes is the size of one term boundary in a Snapshot body.
const termStartBytes = 24

func decodeSnapshot(r *bodyReader) *Snapshot {
	s := &Snapshot{Index: r.u64("index"), Term: r.u64("term")}
	s.NextOffset = r.offset("next offset")
	s.LogStartOffset = r.offset("log start offset")
	s.ConfState = r.bytes("ConfState")
	count := r.u32("term count")
	// Bound the count by the bytes left before allocating for it.
	if r.err == nil && uint64(count)*termStartBytes > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d term boundaries in %d bytes: %w", count, len(r.b), ErrInvalid)
	}
	if r.err == nil && count > 0 {
		s.Terms = make([]TermStart, count)
		for i := range s.Terms {
			s.Terms[i] = TermStart{Term: r.u64("term"), Index: r.u64("term index"), Offset: r.offset("term offset")}
		}
	}
	if r.err != nil || len(r.b) == 0 {
		return s
	}
	// A tail holds legacy epochs, at least one (none is no tail): one
	// encoding per record.
	if s.Legacy = readLegacyEpochs(r); r.err == nil && len(s.Legacy) == 0 {
		r.err = fmt.Errorf("an empty legacy epoch list: %w", ErrInvalid)
	}
	return s
}

// nextRecord reads the framed record at the start of b and returns its
// type, body and size. An error says the bytes are not a whole record with
// a good CRC (what a torn write leaves); it wraps errTornRecord.
func nextRecord(b []byte) (RecordType, []byte, int, error) {
	if len(b) < recordHeaderBytes {
		return 0, nil, 0, fmt.Errorf("%d bytes left, less than a record header: %w", len(b), errTornRecord)
	}
	length := be.Uint32(b[4:])
	if length == 0 || length > recordBytesMax {
		return 0, nil, 0, fmt.Errorf("record length %d outside [1, %d]: %w", length, recordBytesMax, errTornRecord)
	}
	size := 8 + int(length)
	if len(b) < size {
		return 0, nil, 0, fmt.Errorf("record of %d bytes, %d left: %w", size, len(b), errTornRecord)
	}
	if stored, computed := be.Uint32(b), crcOf(b[4:size]); stored != computed {
		return 0, nil, 0, fmt.Errorf("record crc32c stored %#08x, computed %#08x: %w", stored, computed, errTornRecord)
	}
	return RecordType(b[8]), b[recordHeaderBytes:size], size, nil
}

// MetaScan is what ScanMeta found in a raft-meta file.
type MetaScan struct {
	Header  MetaHeader
	Records []Record
	// ValidBytes is where the last valid record ends: the file's size
	// after a clean end, the size to cut the file to after a torn tail.
	ValidBytes int64
	// Torn is nil after a clean end; otherwise it says why the bytes from
	// ValidBytes on are not a record (a write cut by a crash).
	Torn error
	// RecoveryPoint is the prefix that had to be valid.
	RecoveryPoint int64
}

// ScanMeta reads the raft-meta file content b (named name in errors).
// generation and synced come from raft-state: the generation of the file
// it refers to and how many of that file's bytes are known synced.
//
// Records that start before the recovery point must be valid, or the error
// is a *storage.CorruptionError. After it, the first bytes that are not a whole
// record with a good CRC are a torn tail: the scan stops there and reports
// it in MetaScan.Torn. A record with a good CRC whose body does not decode
// is corruption wherever it is: a torn write does not produce a good CRC.
// A header of another format version gives an error wrapping ErrVersion.
func ScanMeta(name string, b []byte, generation uint32, synced int64) (MetaScan, error) {
	header, err := decodeMetaHeader(b)
	if errors.Is(err, ErrVersion) {
		return MetaScan{}, fmt.Errorf("read %s: %w", name, err)
	}
	if err != nil {
		// The header is written by an atomic create or rewrite: it is
		// never torn.
		return MetaScan{}, corruption(name, "header: %v", err)
	}
	recoveryPoint, err := metaRecoveryPoint(header, generation, synced)
	if err != nil {
		return MetaScan{}, corruption(name, "%v", err)
	}
	if int64(len(b)) < recoveryPoint {
		return MetaScan{}, corruption(name, "%d bytes, but %d were synced", len(b), recoveryPoint)
	}
	scan := MetaScan{Header: header, RecoveryPoint: recoveryPoint}
	position := int64(metaHeaderBytes)
	for position < int64(len(b)) {
		recordType, body, size, err := nextRecord(b[position:])
		if err != nil && position < recoveryPoint {
			return MetaScan{}, corruption(name, "record at %d, before the recovery point %d: %v", position, recoveryPoint, err)
		}
		if err != nil {
			scan.Torn = fmt.Errorf("record at %d: %w", position, err)
			break
		}
		rec, err := decodeRecord(recordType, body)
		if err != nil {
			return MetaScan{}, corruption(name, "record at %d: %v", position, err)
		}
		scan.Records = append(scan.Records, rec)
		position += int64(size)
	}
	scan.ValidBytes = position
	return scan, nil
}

// metaRecoveryPoint returns how many bytes of the raft-meta file with
// header h must be valid, given raft-state's generation and synced bytes.
// A rewrite writes and syncs the file whole (WrittenBytes) before
// raft-state is updated, so a file one generation ahead of raft-state is a
// rewrite that landed before the crash.
func metaRecoveryPoint(h MetaHeader, generation uint32, synced int64) (int64, error) {
	switch h.Generation {
	case generation:
		return max(h.WrittenBytes, synced), nil
	case generation + 1:
		return h.WrittenBytes, nil
	}
	return 0, fmt.Errorf("generation %d, raft-state knows %d", h.Generation, generation)
}
