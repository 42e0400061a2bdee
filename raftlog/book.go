package raftlog

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// Position says that Raft entry Index begins at Kafka offset Offset: a
// data entry is the batch stored at Offset, a non-data entry precedes it.
// It is where a forward scan of the segments can start counting entries.
type Position struct {
	Index  uint64
	Offset int64
}

// book is the in-memory content of raft-meta: the records applied in file
// order, kept so that Term and the start of a forward scan are answered
// without I/O. It is pure: no files, no clock.
type book struct {
	hasSnapshot bool
	snapshot    Snapshot
	// nonData are the Entry records above the snapshot, ascending by index.
	nonData []Entry
	// terms are the term boundaries, ascending in both term and index: the
	// snapshot's history, then one per KindEmpty entry in nonData. Every
	// term starts with its leader's empty entry (raft appends one on
	// becoming leader, and Log Matching puts it before every other entry
	// of that term in every log), so these are all the boundaries. An
	// empty entry in the middle of a term (KindNoop) is no boundary.
	terms []TermStart
	// anchors are the Anchor records above the snapshot, ascending by
	// index and by offset.
	anchors []Anchor
	// fine are anchors kept in memory only, ascending: placed every
	// fineAnchorBytes of batches appended or counted at open, so that a
	// count for an entry near the end starts close to it. They are never
	// written (a restart counts from the persisted ones), so they need no
	// agreement check beyond being found by a count.
	fine []Anchor
	// synced is the offset the segments were last known synced up to: the
	// last Synced record, lowered by any Truncate after it (0: none).
	synced int64
}

// fineAnchorBytes is the distance in batch bytes between in-memory
// anchors: a count reads at most about this much before reaching an entry
// the log appended or counted past (24 bytes per MiB of log, 24 MiB for
// 1 TB appended in one run).
const fineAnchorBytes = 1 << 20

// addFine adds an in-memory anchor above every other one.
func (b *book) addFine(a Anchor) {
	if n := len(b.fine); n > 0 && (a.Index <= b.fine[n-1].Index || a.Offset <= b.fine[n-1].Offset) {
		return
	}
	b.fine = append(b.fine, a)
}

// apply adds one record read from (or written to) raft-meta. An error
// means the records contradict each other: the file is corrupt.
func (b *book) apply(r Record) error {
	if _, ok := r.(*Snapshot); !ok && !b.hasSnapshot {
		return fmt.Errorf("%s record before the first Snapshot record", r.Type())
	}
	switch r := r.(type) {
	case *Snapshot:
		return b.applySnapshot(r)
	case *Entry:
		return b.applyEntry(r)
	case *Truncate:
		return b.applyTruncate(r)
	case *Anchor:
		return b.applyAnchor(r)
	case *Synced:
		b.synced = r.NextOffset
		return nil
	}
	return fmt.Errorf("record type %s", r.Type())
}

// applySnapshot moves the compaction point to s: entries and anchors at or
// below it are gone, and its term history replaces the boundaries at or
// below it.
func (b *book) applySnapshot(s *Snapshot) error {
	if b.hasSnapshot && s.Index < b.snapshot.Index {
		return fmt.Errorf("snapshot at %d below the snapshot at %d", s.Index, b.snapshot.Index)
	}
	if err := checkTermHistory(s); err != nil {
		return err
	}
	above := func(i uint64) bool { return i > s.Index }
	b.nonData = slices.DeleteFunc(b.nonData, func(e Entry) bool { return !above(e.Index) })
	b.anchors = slices.DeleteFunc(b.anchors, func(a Anchor) bool { return !above(a.Index) })
	b.fine = slices.DeleteFunc(b.fine, func(a Anchor) bool { return !above(a.Index) })
	kept := slices.DeleteFunc(b.terms, func(t TermStart) bool { return !above(t.Index) })
	b.terms = append(slices.Clone(s.Terms), kept...)
	b.snapshot, b.hasSnapshot = *s, true
	return nil
}

// checkTermHistory verifies that a snapshot's term boundaries ascend and
// end at or below it with its own term.
func checkTermHistory(s *Snapshot) error {
	for i, t := range s.Terms {
		if t.Index > s.Index {
			return fmt.Errorf("snapshot at %d has a term %d starting at %d", s.Index, t.Term, t.Index)
		}
		if i > 0 && (t.Term <= s.Terms[i-1].Term || t.Index <= s.Terms[i-1].Index || t.Offset < s.Terms[i-1].Offset) {
			return fmt.Errorf("snapshot term boundaries %+v then %+v", s.Terms[i-1], t)
		}
	}
	if n := len(s.Terms); n > 0 && s.Terms[n-1].Term != s.Term {
		return fmt.Errorf("snapshot term %d, last term boundary %d", s.Term, s.Terms[n-1].Term)
	}
	for i, e := range s.Legacy {
		if e.Epoch < 0 || e.StartOffset > s.NextOffset || (i > 0 && (e.Epoch <= s.Legacy[i-1].Epoch || e.StartOffset < s.Legacy[i-1].StartOffset)) {
			return fmt.Errorf("snapshot legacy epoch %d %+v", i, e)
		}
	}
	return nil
}

// applyEntry adds a non-data entry; entries arrive in index order (a
// conflict is preceded by its Truncate record).
func (b *book) applyEntry(e *Entry) error {
	if e.Index <= b.lastIndex() {
		return fmt.Errorf("entry %d at or below index %d already known", e.Index, b.lastIndex())
	}
	if start, _ := b.start(e.Index); e.NextOffset < start.Offset {
		return fmt.Errorf("entry %d precedes offset %d, below %d", e.Index, e.NextOffset, start.Offset)
	}
	if a, ok := b.anchorAtOrBelow(e.Index); ok && e.NextOffset <= a.Offset {
		return fmt.Errorf("entry %d precedes offset %d, not after the batch of anchor %+v", e.Index, e.NextOffset, a)
	}
	// Only a term's first entry (KindEmpty) may raise the term; every
	// other kind, KindNoop included, carries the term in force.
	if e.Kind == KindEmpty {
		if last := b.lastTerm(); e.Term <= last {
			return fmt.Errorf("empty entry %d of term %d does not start a term after %d", e.Index, e.Term, last)
		}
		b.terms = append(b.terms, TermStart{Term: e.Term, Index: e.Index, Offset: e.NextOffset})
	} else if term, _ := b.term(e.Index); e.Term != term {
		return fmt.Errorf("entry %d of term %d in term %d", e.Index, e.Term, term)
	}
	b.nonData = append(b.nonData, *e)
	return nil
}

// applyTruncate voids every entry, anchor and term boundary at or above
// t.Index. The snapshot is never cut: it is committed.
func (b *book) applyTruncate(t *Truncate) error {
	if t.Index <= b.snapshot.Index {
		return fmt.Errorf("truncate at %d, at or below the snapshot at %d", t.Index, b.snapshot.Index)
	}
	b.nonData = b.nonData[:sort.Search(len(b.nonData), func(i int) bool { return b.nonData[i].Index >= t.Index })]
	b.anchors = b.anchors[:sort.Search(len(b.anchors), func(i int) bool { return b.anchors[i].Index >= t.Index })]
	b.fine = b.fine[:sort.Search(len(b.fine), func(i int) bool { return b.fine[i].Index >= t.Index })]
	b.terms = b.terms[:sort.Search(len(b.terms), func(i int) bool { return b.terms[i].Index >= t.Index })]
	b.synced = min(b.synced, t.NextOffset)
	return nil
}

// applyAnchor adds an anchor. Anchors are appended after the sync that
// covers their batch, so one may follow Entry records of higher indexes;
// it must agree with them: offsets never decrease with the index, and a
// data entry occupies at least one offset.
func (b *book) applyAnchor(a *Anchor) error {
	if a.Index <= b.snapshot.Index {
		return fmt.Errorf("anchor %d at or below the snapshot at %d", a.Index, b.snapshot.Index)
	}
	if n := len(b.anchors); n > 0 && (a.Index <= b.anchors[n-1].Index || a.Offset <= b.anchors[n-1].Offset) {
		return fmt.Errorf("anchor %+v after anchor %+v", *a, b.anchors[n-1])
	}
	if _, ok := b.nonDataAt(a.Index); ok {
		return fmt.Errorf("anchor %d on a non-data entry", a.Index)
	}
	if start, _ := b.start(a.Index); a.Offset < start.Offset {
		return fmt.Errorf("anchor %+v below offset %d of index %d", *a, start.Offset, start.Index)
	}
	if next, ok := b.nonDataAbove(a.Index); ok && next.NextOffset <= a.Offset {
		return fmt.Errorf("anchor %+v not below entry %d at offset %d", *a, next.Index, next.NextOffset)
	}
	b.anchors = append(b.anchors, *a)
	return nil
}

// lastIndex is the highest index raft-meta knows of (snapshot, non-data
// entry or anchor); data entries after it are known only to the segments.
func (b *book) lastIndex() uint64 {
	last := b.snapshot.Index
	if n := len(b.nonData); n > 0 {
		last = max(last, b.nonData[n-1].Index)
	}
	if n := len(b.anchors); n > 0 {
		last = max(last, b.anchors[n-1].Index)
	}
	return last
}

func (b *book) lastTerm() uint64 {
	if n := len(b.terms); n > 0 {
		return b.terms[n-1].Term
	}
	return b.snapshot.Term
}

// term returns the term of entry i, for any i at or above the snapshot
// index up to the end of the log (which the caller knows); false below
// the snapshot (compacted).
func (b *book) term(i uint64) (uint64, bool) {
	if i < b.snapshot.Index {
		return 0, false
	}
	if i == b.snapshot.Index {
		return b.snapshot.Term, true
	}
	at := sort.Search(len(b.terms), func(k int) bool { return b.terms[k].Index > i })
	if at == 0 {
		return b.snapshot.Term, true
	}
	return b.terms[at-1].Term, true
}

// nonDataAt returns the non-data entry with index i, if any.
func (b *book) nonDataAt(i uint64) (Entry, bool) {
	at, found := slices.BinarySearchFunc(b.nonData, i, func(e Entry, i uint64) int { return cmp.Compare(e.Index, i) })
	if !found {
		return Entry{}, false
	}
	return b.nonData[at], true
}

// nonDataAbove returns the first non-data entry with an index above i.
func (b *book) nonDataAbove(i uint64) (Entry, bool) {
	at := sort.Search(len(b.nonData), func(k int) bool { return b.nonData[k].Index > i })
	if at == len(b.nonData) {
		return Entry{}, false
	}
	return b.nonData[at], true
}

// anchorAtOrBelow returns the anchor with the largest index at or below i.
func (b *book) anchorAtOrBelow(i uint64) (Anchor, bool) {
	at := sort.Search(len(b.anchors), func(k int) bool { return b.anchors[k].Index > i })
	if at == 0 {
		return Anchor{}, false
	}
	return b.anchors[at-1], true
}

// start returns the known position with the largest index at or below i:
// the nearest anchor (persisted or fine), non-data entry or the entry
// after the snapshot. A
// scan for entry i counts forward from it. False for i at or below the
// snapshot index (no entry to find there).
func (b *book) start(i uint64) (Position, bool) {
	if i <= b.snapshot.Index {
		return Position{}, false
	}
	best := Position{Index: b.snapshot.Index + 1, Offset: b.snapshot.NextOffset}
	if a, ok := b.anchorAtOrBelow(i); ok && a.Index >= best.Index {
		best = Position(a)
	}
	if at := sort.Search(len(b.fine), func(k int) bool { return b.fine[k].Index > i }); at > 0 && b.fine[at-1].Index >= best.Index {
		best = Position(b.fine[at-1])
	}
	at := sort.Search(len(b.nonData), func(k int) bool { return b.nonData[k].Index > i })
	if at > 0 && b.nonData[at-1].Index >= best.Index {
		best = Position{Index: b.nonData[at-1].Index, Offset: b.nonData[at-1].NextOffset}
	}
	return best, true
}

// liveRecords returns the records a rewritten raft-meta holds, in an
// order apply takes: the Snapshot, then the non-data entries and the
// anchors above it by index, then the Synced offset if any. Anchors are
// thinned to one per interval bytes of log as position (the byte position
// of an offset in the log) measures it, the first and last always kept;
// the kept ones are returned too.
func (b *book) liveRecords(interval int64, position func(offset int64) int64) ([]Record, []Anchor) {
	var anchors []Anchor
	var keptAt int64
	for k, a := range b.anchors {
		at := position(a.Offset)
		if k == len(b.anchors)-1 || len(anchors) == 0 || at-keptAt >= interval {
			anchors, keptAt = append(anchors, a), at
		}
	}
	snap := b.snapshot
	records := make([]Record, 0, 1+len(b.nonData)+len(anchors))
	records = append(records, &snap)
	i, j := 0, 0
	for i < len(b.nonData) || j < len(anchors) {
		if j == len(anchors) || (i < len(b.nonData) && b.nonData[i].Index < anchors[j].Index) {
			e := b.nonData[i]
			records = append(records, &e)
			i++
		} else {
			a := anchors[j]
			records = append(records, &a)
			j++
		}
	}
	if b.synced > 0 {
		records = append(records, &Synced{NextOffset: b.synced})
	}
	return records, anchors
}
