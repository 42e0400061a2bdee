package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/cairnlog/cairn/batch"
)

// Index entry sizes. Part of the format; see doc.go.
const (
	offsetEntryBytes = 8  // relative offset uint32, position uint32
	timeEntryBytes   = 12 // max timestamp int64, relative offset uint32
)

// noTimestamp is the running maximum of a segment without batches. A batch
// whose MaxTimestamp is math.MinInt64 is therefore never found by timestamp.
const noTimestamp = math.MinInt64

var errIndexInvalid = errors.New("invalid index")

// offsetEntry says the batch with base offset segmentBase+relativeOffset
// starts at byte position in the segment's .log file.
type offsetEntry struct {
	relativeOffset uint32
	position       uint32
}

// timeEntry says the batch with base offset segmentBase+relativeOffset has
// MaxTimestamp timestampMs, larger than every batch before it in the segment.
type timeEntry struct {
	timestampMs    int64
	relativeOffset uint32
}

func appendOffsetEntry(b []byte, e offsetEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, e.relativeOffset)
	return binary.BigEndian.AppendUint32(b, e.position)
}

func appendTimeEntry(b []byte, e timeEntry) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(e.timestampMs))
	return binary.BigEndian.AppendUint32(b, e.relativeOffset)
}

// decodeOffsetIndex parses an .index file, checking that entries strictly
// increase in both offset and position.
func decodeOffsetIndex(b []byte) ([]offsetEntry, error) {
	if len(b)%offsetEntryBytes != 0 {
		return nil, fmt.Errorf("offset index of %d bytes: %w", len(b), errIndexInvalid)
	}
	entries := make([]offsetEntry, len(b)/offsetEntryBytes)
	for i := range entries {
		at := i * offsetEntryBytes
		e := offsetEntry{binary.BigEndian.Uint32(b[at:]), binary.BigEndian.Uint32(b[at+4:])}
		if i > 0 && (e.relativeOffset <= entries[i-1].relativeOffset || e.position <= entries[i-1].position) {
			return nil, fmt.Errorf("offset index entry %d does not increase: %w", i, errIndexInvalid)
		}
		entries[i] = e
	}
	return entries, nil
}

// decodeTimeIndex parses a .timeindex file, checking that timestamps
// strictly increase and offsets never decrease.
func decodeTimeIndex(b []byte) ([]timeEntry, error) {
	if len(b)%timeEntryBytes != 0 {
		return nil, fmt.Errorf("time index of %d bytes: %w", len(b), errIndexInvalid)
	}
	entries := make([]timeEntry, len(b)/timeEntryBytes)
	for i := range entries {
		e := decodeTimeEntry(b[i*timeEntryBytes:])
		if i > 0 && (e.timestampMs <= entries[i-1].timestampMs || e.relativeOffset < entries[i-1].relativeOffset) {
			return nil, fmt.Errorf("time index entry %d does not increase: %w", i, errIndexInvalid)
		}
		entries[i] = e
	}
	return entries, nil
}

func decodeTimeEntry(b []byte) timeEntry {
	return timeEntry{int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint32(b[8:])}
}

// floorPosition returns where to start scanning for relativeOffset: the
// position of the last entry at or below it, or 0.
func floorPosition(entries []offsetEntry, relativeOffset uint32) int64 {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].relativeOffset > relativeOffset })
	if i == 0 {
		return 0
	}
	return int64(entries[i-1].position)
}

// timeFloor returns the last entry with a timestamp below tsMs. Every batch
// up to and including that entry's batch has MaxTimestamp below tsMs, so the
// first batch reaching tsMs comes after it.
func timeFloor(entries []timeEntry, tsMs int64) (timeEntry, bool) {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].timestampMs >= tsMs })
	if i == 0 {
		return timeEntry{}, false
	}
	return entries[i-1], true
}

// relative converts an offset inside a segment to its 32-bit relative form;
// callers guarantee the range (segments roll before it would overflow).
func relative(base, offset int64) uint32 { return uint32(offset - base) }

// indexer decides which batches of a segment get index entries, and tracks
// the segment's largest timestamp. It is pure: the caller writes the entries.
//
// Offset index: a batch gets an entry when it starts at least intervalBytes
// after the previous entry (position 0 acts as an implicit first entry), so a
// lookup scans less than intervalBytes plus one batch.
//
// Time index: a batch gets an entry when it raises the segment's largest
// timestamp and starts at least intervalBytes after the previous time entry's
// batch (the first batch always gets one). seal adds an entry for the batch
// holding the maximum when the last entry is not it. Entries are the running
// maximum, so the first batch reaching a timestamp lies after the last entry
// below it and at or before the next entry.
type indexer struct {
	base          int64
	intervalBytes int64

	lastOffsetEntryPosition int64
	hasTimeEntry            bool
	lastTimeEntryPosition   int64 // at or below the position of the last time entry's batch
	lastTimeEntryMs         int64

	maxTimestampMs     int64
	maxTimestampOffset int64
}

func newIndexer(base, intervalBytes int64) indexer {
	return indexer{base: base, intervalBytes: intervalBytes, lastTimeEntryMs: noTimestamp, maxTimestampMs: noTimestamp}
}

// resume rebuilds an indexer for a segment whose first entries are known and
// whose batches up to here had the given largest timestamp.
func resumeIndexer(base, intervalBytes int64, offsets []offsetEntry, times []timeEntry, maxTimestampMs, maxTimestampOffset int64) indexer {
	x := newIndexer(base, intervalBytes)
	if len(offsets) > 0 {
		x.lastOffsetEntryPosition = int64(offsets[len(offsets)-1].position)
	}
	if len(times) > 0 {
		last := times[len(times)-1]
		x.hasTimeEntry = true
		x.lastTimeEntryMs = last.timestampMs
		// The exact position is not stored; the floor only makes the next
		// entry come sooner, which keeps the scan bound.
		x.lastTimeEntryPosition = floorPosition(offsets, last.relativeOffset)
	}
	x.maxTimestampMs, x.maxTimestampOffset = maxTimestampMs, maxTimestampOffset
	return x
}

// add accounts for the batch h at position and returns the entries it gets.
func (x *indexer) add(h batch.Header, position int64) (offset *offsetEntry, time *timeEntry) {
	rel := relative(x.base, h.BaseOffset)
	if position > x.lastOffsetEntryPosition && position-x.lastOffsetEntryPosition >= x.intervalBytes {
		offset = &offsetEntry{relativeOffset: rel, position: uint32(position)}
		x.lastOffsetEntryPosition = position
	}
	if h.MaxTimestamp > x.maxTimestampMs {
		x.maxTimestampMs, x.maxTimestampOffset = h.MaxTimestamp, h.BaseOffset
		if !x.hasTimeEntry || position-x.lastTimeEntryPosition >= x.intervalBytes {
			time = &timeEntry{timestampMs: h.MaxTimestamp, relativeOffset: rel}
			x.hasTimeEntry, x.lastTimeEntryPosition, x.lastTimeEntryMs = true, position, h.MaxTimestamp
		}
	}
	return offset, time
}

// seal returns the entry for the batch holding the segment's maximum when the
// time index does not end with it, so that a sealed segment's last time
// entry is its largest timestamp.
func (x *indexer) seal() (timeEntry, bool) {
	if x.maxTimestampMs == noTimestamp || (x.hasTimeEntry && x.lastTimeEntryMs >= x.maxTimestampMs) {
		return timeEntry{}, false
	}
	e := timeEntry{timestampMs: x.maxTimestampMs, relativeOffset: relative(x.base, x.maxTimestampOffset)}
	x.hasTimeEntry, x.lastTimeEntryMs = true, x.maxTimestampMs
	return e, true
}

// encodeIndexes returns the file contents of both indexes.
func encodeIndexes(offsets []offsetEntry, times []timeEntry) (offsetBytes, timeBytes []byte) {
	offsetBytes = make([]byte, 0, len(offsets)*offsetEntryBytes)
	for _, e := range offsets {
		offsetBytes = appendOffsetEntry(offsetBytes, e)
	}
	timeBytes = make([]byte, 0, len(times)*timeEntryBytes)
	for _, e := range times {
		timeBytes = appendTimeEntry(timeBytes, e)
	}
	return offsetBytes, timeBytes
}
