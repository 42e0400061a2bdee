package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// State file layout. Part of the format; see doc.go for the diagram.
const (
	stateMagic         = 0x43524e53 // "CRNS"
	stateFormatVersion = 1
	stateFlagClean     = 1 << 0
	stateFixedBytes    = 68 // everything before the segment list
	stateSegmentBytes  = 16 // one segment list entry
	stateCRCBytes      = 4
	// stateSegmentsMax bounds the segment list a reader accepts, so a damaged
	// count cannot make it allocate without limit.
	stateSegmentsMax = 1 << 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errStateInvalid is wrapped by decodeState's errors.
var errStateInvalid = errors.New("invalid state file")

// recoveryPoint is a place in the log known to be valid and durable: every
// byte before it was synced, every index entry counted was synced.
type recoveryPoint struct {
	nextOffset         int64
	segmentBase        int64
	positionBytes      int64
	offsetIndexEntries uint32
	timeIndexEntries   uint32
	// The largest batch MaxTimestamp in the segment before positionBytes and
	// the base offset of the first batch holding it; noTimestamp when none.
	maxTimestampMs     int64
	maxTimestampOffset int64
}

// segmentRecord is what the state file remembers of each segment.
type segmentRecord struct {
	base      int64
	createdMs int64
}

// logState is the content of the state file.
type logState struct {
	clean       bool
	startOffset int64
	recovery    recoveryPoint
	segments    []segmentRecord // oldest first; the last is the recovery point's segment
}

func (s logState) encode() []byte {
	be := binary.BigEndian
	b := make([]byte, stateFixedBytes, stateFixedBytes+len(s.segments)*stateSegmentBytes+stateCRCBytes)
	be.PutUint32(b[0:], stateMagic)
	be.PutUint16(b[4:], stateFormatVersion)
	if s.clean {
		b[6] = stateFlagClean
	}
	be.PutUint64(b[8:], uint64(s.startOffset))
	r := s.recovery
	be.PutUint64(b[16:], uint64(r.nextOffset))
	be.PutUint64(b[24:], uint64(r.segmentBase))
	be.PutUint64(b[32:], uint64(r.positionBytes))
	be.PutUint32(b[40:], r.offsetIndexEntries)
	be.PutUint32(b[44:], r.timeIndexEntries)
	be.PutUint64(b[48:], uint64(r.maxTimestampMs))
	be.PutUint64(b[56:], uint64(r.maxTimestampOffset))
	be.PutUint32(b[64:], uint32(len(s.segments)))
	for _, seg := range s.segments {
		b = be.AppendUint64(b, uint64(seg.base))
		b = be.AppendUint64(b, uint64(seg.createdMs))
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeState(b []byte) (logState, error) {
	be := binary.BigEndian
	if len(b) < stateFixedBytes+stateCRCBytes {
		return logState{}, fmt.Errorf("%d bytes, want at least %d: %w", len(b), stateFixedBytes+stateCRCBytes, errStateInvalid)
	}
	if magic := be.Uint32(b[0:]); magic != stateMagic {
		return logState{}, fmt.Errorf("magic %#x: %w", magic, errStateInvalid)
	}
	if version := be.Uint16(b[4:]); version != stateFormatVersion {
		return logState{}, fmt.Errorf("format version %d, want %d: %w", version, stateFormatVersion, errStateInvalid)
	}
	count := be.Uint32(b[64:])
	if count == 0 || count > stateSegmentsMax {
		return logState{}, fmt.Errorf("segment count %d: %w", count, errStateInvalid)
	}
	wantBytes := stateFixedBytes + int(count)*stateSegmentBytes + stateCRCBytes
	if len(b) != wantBytes {
		return logState{}, fmt.Errorf("%d bytes, want %d for %d segments: %w", len(b), wantBytes, count, errStateInvalid)
	}
	body := b[:len(b)-stateCRCBytes]
	if stored, computed := be.Uint32(b[len(body):]), crc32.Checksum(body, castagnoli); stored != computed {
		return logState{}, fmt.Errorf("crc32c stored %#08x, computed %#08x: %w", stored, computed, errStateInvalid)
	}
	s := logState{
		clean:       b[6]&stateFlagClean != 0,
		startOffset: int64(be.Uint64(b[8:])),
		recovery: recoveryPoint{
			nextOffset:         int64(be.Uint64(b[16:])),
			segmentBase:        int64(be.Uint64(b[24:])),
			positionBytes:      int64(be.Uint64(b[32:])),
			offsetIndexEntries: be.Uint32(b[40:]),
			timeIndexEntries:   be.Uint32(b[44:]),
			maxTimestampMs:     int64(be.Uint64(b[48:])),
			maxTimestampOffset: int64(be.Uint64(b[56:])),
		},
		segments: make([]segmentRecord, count),
	}
	for i := range s.segments {
		at := stateFixedBytes + i*stateSegmentBytes
		s.segments[i] = segmentRecord{base: int64(be.Uint64(b[at:])), createdMs: int64(be.Uint64(b[at+8:]))}
	}
	if err := s.check(); err != nil {
		return logState{}, err
	}
	return s, nil
}

// check verifies the invariants every state the log writes satisfies.
func (s logState) check() error {
	r := s.recovery
	last := s.segments[len(s.segments)-1]
	switch {
	case s.segments[0].base < 0:
		return fmt.Errorf("negative segment base %d: %w", s.segments[0].base, errStateInvalid)
	case last.base != r.segmentBase:
		return fmt.Errorf("recovery segment %d is not the last segment %d: %w", r.segmentBase, last.base, errStateInvalid)
	case r.nextOffset < r.segmentBase || r.nextOffset-r.segmentBase > math.MaxUint32+1:
		return fmt.Errorf("recovery offset %d outside segment %d: %w", r.nextOffset, r.segmentBase, errStateInvalid)
	case r.positionBytes < 0 || r.positionBytes > math.MaxUint32:
		return fmt.Errorf("recovery position %d: %w", r.positionBytes, errStateInvalid)
	case s.startOffset < s.segments[0].base || s.startOffset > r.nextOffset:
		return fmt.Errorf("start offset %d outside [%d, %d]: %w", s.startOffset, s.segments[0].base, r.nextOffset, errStateInvalid)
	}
	for i := 1; i < len(s.segments); i++ {
		if s.segments[i].base <= s.segments[i-1].base {
			return fmt.Errorf("segment bases %d then %d: %w", s.segments[i-1].base, s.segments[i].base, errStateInvalid)
		}
	}
	return nil
}
