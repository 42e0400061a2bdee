package raftlog

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cairnlog/cairn/batch"
)

// headerSource reads the headers of the batches stored in the segments.
// It is an interface so that the locator, which is pure counting, is
// tested without segments.
type headerSource interface {
	// headers returns the headers of consecutive stored batches, the first
	// one being the batch that holds offset from; at least one unless the
	// log ends at from, then none. It may stop early: the caller asks again
	// from where it ended.
	headers(from int64) ([]batch.Header, error)
}

// errLogMismatch: the segments and raft-meta disagree about an entry
// (a batch missing, not where counting puts it, or of the wrong term).
var errLogMismatch = errors.New("raftlog: segments and raft-meta disagree")

// located is one Raft entry as found by the locator: a non-data entry
// (NonData set) kept in raft-meta, or the data batch stored at Offset.
type located struct {
	Index uint64
	// Offset is where the entry begins: the batch's base offset, or the
	// Kafka offset a non-data entry precedes.
	Offset  int64
	NonData *Entry
	// Header is the data batch's header (zero for a non-data entry).
	Header batch.Header
}

// locate returns the entries with indexes in [lo, hi) in order, counting
// forward from the nearest known position at or below lo (book.start):
// one index per batch read from src and one per non-data entry whose next
// offset is the offset reached. It stops early at the end of the log, so
// fewer than hi-lo entries means the log ends before hi. lo at or below
// the snapshot index is compacted (false). Any disagreement between the
// segments and the book is errLogMismatch.
func locate(b *book, src headerSource, lo, hi uint64) ([]located, bool, error) {
	var out []located
	ok, err := scan(b, src, lo, hi, func(e located) bool {
		out = append(out, e)
		return true
	})
	if err != nil {
		return nil, ok, err
	}
	return out, ok, nil
}

// scan is locate handing each entry to fn as it is found, so a caller
// that needs only some of them (a size limit) stops the count early by
// returning false.
func scan(b *book, src headerSource, lo, hi uint64, fn func(located) bool) (bool, error) {
	pos, ok := b.start(lo)
	if !ok {
		return false, nil
	}
	w := newWalker(b, src, pos)
	for w.index < hi {
		e, more, err := w.step()
		if err != nil {
			return true, err
		}
		if !more {
			break
		}
		if e.Index >= lo && !fn(e) {
			break
		}
	}
	return true, nil
}

// walker is the state of one forward count: the next entry's index and
// the offset it begins at, the next non-data entry, and headers read
// ahead from src.
type walker struct {
	b           *book
	src         headerSource
	index       uint64
	offset      int64
	nextNonData int
	pending     []batch.Header
}

// newWalker starts a count at a known position.
func newWalker(b *book, src headerSource, pos Position) *walker {
	w := &walker{b: b, src: src, index: pos.Index, offset: pos.Offset}
	w.nextNonData = sort.Search(len(b.nonData), func(k int) bool { return b.nonData[k].Index >= pos.Index })
	return w
}

// step returns entry w.index and moves past it; false at the end of the
// log.
func (w *walker) step() (located, bool, error) {
	if w.nextNonData < len(w.b.nonData) && w.b.nonData[w.nextNonData].Index == w.index {
		e := &w.b.nonData[w.nextNonData]
		if e.NextOffset != w.offset {
			return located{}, false, fmt.Errorf("entry %d precedes offset %d, counted at %d: %w",
				e.Index, e.NextOffset, w.offset, errLogMismatch)
		}
		w.nextNonData++
		w.index++
		return located{Index: e.Index, Offset: e.NextOffset, NonData: e}, true, nil
	}
	h, ok, err := w.header()
	if err != nil || !ok {
		if err == nil && w.nextNonData < len(w.b.nonData) {
			err = fmt.Errorf("log ends at offset %d (index %d) before entry %d: %w",
				w.offset, w.index, w.b.nonData[w.nextNonData].Index, errLogMismatch)
		}
		return located{}, false, err
	}
	if term, _ := w.b.term(w.index); int64(h.PartitionLeaderEpoch) != int64(term) {
		return located{}, false, fmt.Errorf("batch at offset %d has epoch %d, entry %d has term %d: %w",
			h.BaseOffset, h.PartitionLeaderEpoch, w.index, term, errLogMismatch)
	}
	e := located{Index: w.index, Offset: w.offset, Header: h}
	w.index++
	w.offset = h.NextOffset()
	return e, true, nil
}

// header returns the header of the batch at w.offset, reading ahead from
// src when nothing read is left; false at the end of the log.
func (w *walker) header() (batch.Header, bool, error) {
	if len(w.pending) == 0 {
		hs, err := w.src.headers(w.offset)
		if err != nil {
			return batch.Header{}, false, fmt.Errorf("read batch headers at offset %d: %w", w.offset, err)
		}
		if len(hs) == 0 {
			return batch.Header{}, false, nil
		}
		w.pending = hs
	}
	h := w.pending[0]
	w.pending = w.pending[1:]
	if h.BaseOffset != w.offset {
		return batch.Header{}, false, fmt.Errorf("batch at offset %d where entry %d should begin at %d: %w",
			h.BaseOffset, w.index, w.offset, errLogMismatch)
	}
	return h, true, nil
}

// offsetOf returns the Kafka offset entry i begins at (for the entry after
// the last, the log end): the base offset of a data entry, the next offset
// of a non-data entry. False for i at or below the snapshot index.
func offsetOf(b *book, src headerSource, i uint64) (int64, bool, error) {
	if i <= b.snapshot.Index {
		return 0, false, nil
	}
	pos, _ := b.start(i)
	if pos.Index == i {
		return pos.Offset, true, nil
	}
	found, _, err := locate(b, src, i-1, i)
	if err != nil {
		return 0, true, err
	}
	if len(found) == 0 {
		return 0, true, fmt.Errorf("entry %d: %w", i, errBeyondEnd)
	}
	return nextOffsetAfter(found[0]), true, nil
}

// walkEnd is where a count to the end of the log stopped.
type walkEnd struct {
	// Position is the entry after the last one found and the offset it
	// begins at.
	Position
	// mismatch says why the count stopped before the end of the segments
	// (it wraps errLogMismatch); nil when it reached their end.
	mismatch error
	// fine are in-memory anchors placed every fineAnchorBytes on the way.
	fine []Anchor
	// lastData is the last data entry found (zero Index when none).
	lastData Position
}

// walkToEnd counts entries from a known position to the end of the log,
// or to the first entry the segments and the book disagree about. Other
// errors (a failed read, a batch header that does not parse) are returned
// as such: they are no reason to cut anything.
func walkToEnd(b *book, src headerSource, from Position) (walkEnd, error) {
	w := newWalker(b, src, from)
	var end walkEnd
	var since int64
	for {
		e, more, err := w.step()
		if errors.Is(err, errLogMismatch) {
			end.mismatch = err
			break
		}
		if err != nil {
			return walkEnd{}, err
		}
		if !more {
			break
		}
		if e.NonData == nil {
			end.lastData = Position{Index: e.Index, Offset: e.Offset}
			if since >= fineAnchorBytes {
				end.fine, since = append(end.fine, Anchor{Index: e.Index, Offset: e.Offset}), 0
			}
			since += int64(e.Header.TotalBytes())
		}
	}
	end.Position = Position{Index: w.index, Offset: w.offset}
	return end, nil
}

// errBeyondEnd: an index after the entry following the last one.
var errBeyondEnd = errors.New("raftlog: index beyond the end of the log")

// nextOffsetAfter is the offset the entry after e begins at.
func nextOffsetAfter(e located) int64 {
	if e.NonData != nil {
		return e.Offset
	}
	return e.Header.NextOffset()
}
