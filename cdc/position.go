package cdc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairnlog/cairn/batch"
)

// HeaderPosition names the header carrying a record's Position. Part of the
// on-log format: a restarted connector reads it back.
const HeaderPosition = "cairn-cdc-position"

// Position is where a change sits in the database's commit order: the
// commit LSN of its transaction, then its index among that transaction's
// changes. The zero Position is before every change.
type Position struct {
	CommitLSN uint64
	Index     uint32
}

// Less orders positions by commit, then by index within the commit.
func (p Position) Less(q Position) bool {
	if p.CommitLSN != q.CommitLSN {
		return p.CommitLSN < q.CommitLSN
	}
	return p.Index < q.Index
}

// IsZero reports the position before every change.
func (p Position) IsZero() bool { return p == Position{} }

// String is the header value: "<commit LSN>/<index>", both hexadecimal.
func (p Position) String() string {
	return strconv.FormatUint(p.CommitLSN, 16) + "/" + strconv.FormatUint(uint64(p.Index), 16)
}

// ParsePosition reads a header value written by String.
func ParsePosition(s string) (Position, error) {
	lsn, index, ok := strings.Cut(s, "/")
	if !ok {
		return Position{}, fmt.Errorf("cdc position %q: want <commit LSN>/<index>", s)
	}
	l, err := strconv.ParseUint(lsn, 16, 64)
	if err != nil {
		return Position{}, fmt.Errorf("cdc position %q: commit LSN: %w", s, err)
	}
	i, err := strconv.ParseUint(index, 16, 32)
	if err != nil {
		return Position{}, fmt.Errorf("cdc position %q: index: %w", s, err)
	}
	return Position{CommitLSN: l, Index: uint32(i)}, nil
}

// RecordPosition returns the position a record carries; ok is false for a
// record without the header (one not written by a connector).
func RecordPosition(r batch.Record) (p Position, ok bool, err error) {
	for _, h := range r.Headers {
		if h.Key == HeaderPosition {
			p, err := ParsePosition(string(h.Value))
			return p, true, err
		}
	}
	return Position{}, false, nil
}

// LastPosition is the highest position among records (the last one a
// connector wrote carries it, but compaction may have removed it and kept
// earlier ones), or the zero Position when none carries one.
func LastPosition(records []batch.Record) (Position, error) {
	var last Position
	for _, r := range records {
		p, ok, err := RecordPosition(r)
		if err != nil {
			return Position{}, fmt.Errorf("record at offset %d: %w", r.Offset, err)
		}
		if ok && last.Less(p) {
			last = p
		}
	}
	return last, nil
}

// PartitionID names one partition of one topic.
type PartitionID struct {
	Topic string
	Index int32
}

// Holdings is what each partition already holds: the highest position
// among its records. A restarted connector skips a change for a partition
// whose holding is at or past the change's position, so a transaction
// appended to some of its partitions before a crash is completed on the
// others and doubled on none.
type Holdings map[PartitionID]Position

// Holds reports whether p already has the change at pos.
func (h Holdings) Holds(p PartitionID, pos Position) bool {
	held, ok := h[p]
	return ok && !held.Less(pos)
}

// Advance records that p now holds everything up to pos.
func (h Holdings) Advance(p PartitionID, pos Position) {
	if h[p].Less(pos) {
		h[p] = pos
	}
}

// Max is the highest position held anywhere: no change after it was
// appended. A slot confirmed past it lost changes the log never got.
func (h Holdings) Max() Position {
	var m Position
	for _, pos := range h {
		if m.Less(pos) {
			m = pos
		}
	}
	return m
}
