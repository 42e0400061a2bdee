package raftlog

import (
	"fmt"
	"sort"

	"go.etcd.io/raft/v3"
)

// EpochEndOffset answers Kafka's OffsetForLeaderEpoch over the log's
// leader epochs (its terms, and below them the legacy epochs of a
// partition written before replication) as the log stands below offset
// limit: the largest epoch at or below term that wrote data below limit,
// and the offset where the next epoch that wrote data starts, or the log
// end for the current epoch, never past limit. An epoch that wrote
// nothing (the next one starts at the same offset) collapses into the
// next, as in Kafka's epoch cache and the single-node partition's
// history; the current epoch counts even before it writes. A term below
// every known epoch gives (-1, -1); one above them all the current
// epoch and the log end, as the single-node partition answers.
//
// The term boundaries include the uncommitted tail, which a leader's
// successor may cut: answers to consumers pass the high watermark as
// limit, so they never advertise an end, or an epoch, that only the tail
// holds (math.MaxInt64 answers over the whole log). The log end is read
// under mu with the boundaries; a truncation cuts the book before the
// segments, so the end may still be the old one, but only above the
// commit point, which a high watermark limit never exceeds.
func (l *Log) EpochEndOffset(term int32, limit int64) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	logEnd := min(l.storage.NextOffset(), limit)
	return endOffsetFor(epochHistory(l.book.snapshot.Legacy, l.book.terms, limit), term, logEnd)
}

// TermEpochs returns the epochs the term boundaries give the data in
// [from, to): ascending by start offset, the first the last to start at
// or below from (or the first of all, when none does), each stamped in
// every batch from its start to the next one's. A term that wrote no data
// starts where the next one does and is left out. A batch's CRC does not
// cover its leader epoch, so a replica checks each batch it reads against
// these. Data below the first boundary (a partition's written before
// replication, stamped with its legacy epochs) has none.
func (l *Log) TermEpochs(from, to int64) []LegacyEpoch {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return termEpochs(l.book.terms, from, to)
}

// termEpochs is TermEpochs over the term boundaries terms.
func termEpochs(terms []TermStart, from, to int64) []LegacyEpoch {
	k := max(sort.Search(len(terms), func(i int) bool { return terms[i].Offset > from })-1, 0)
	var out []LegacyEpoch
	for _, t := range terms[k:] {
		if n := len(out); n > 0 && t.Offset >= to && t.Offset > out[n-1].StartOffset {
			break
		}
		if n := len(out); n > 0 && out[n-1].StartOffset == t.Offset {
			out = out[:n-1]
		}
		out = append(out, LegacyEpoch{Epoch: int32(t.Term), StartOffset: t.Offset})
	}
	return out
}

// epochHistory merges the legacy epochs and the term boundaries into one
// Kafka epoch history of the log below offset limit, ascending in epoch
// and start offset, dropping the epochs that wrote nothing there: those
// the next one starts at the same offset as, once every start at or past
// limit is taken as limit (the last epoch stays: it is current).
func epochHistory(legacy []LegacyEpoch, terms []TermStart, limit int64) []LegacyEpoch {
	h := make([]LegacyEpoch, 0, len(legacy)+len(terms))
	begin := func(e LegacyEpoch) {
		e.StartOffset = min(e.StartOffset, limit)
		for len(h) > 0 && h[len(h)-1].StartOffset >= e.StartOffset {
			h = h[:len(h)-1]
		}
		h = append(h, e)
	}
	for _, e := range legacy {
		begin(e)
	}
	for _, t := range terms {
		// Terms are at most MaxInt32: classify refuses more.
		begin(LegacyEpoch{Epoch: int32(t.Term), StartOffset: t.Offset})
	}
	return h
}

// endOffsetFor is OffsetForLeaderEpoch over a history: see EpochEndOffset.
func endOffsetFor(h []LegacyEpoch, epoch int32, logEnd int64) (int32, int64) {
	at := sort.Search(len(h), func(k int) bool { return h[k].Epoch > epoch })
	switch {
	case at == 0:
		return -1, -1
	case at == len(h):
		return h[at-1].Epoch, logEnd
	}
	return h[at-1].Epoch, h[at].StartOffset
}

// IndexAtOffset returns the index of the data entry whose batch holds
// Kafka offset offset: raft.ErrCompacted below the offset after the
// snapshot, raft.ErrUnavailable at or past the log end.
func (l *Log) IndexAtOffset(offset int64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if offset < l.book.snapshot.NextOffset {
		return 0, fmt.Errorf("index at offset %d, below the snapshot's next offset %d: %w", offset, l.book.snapshot.NextOffset, raft.ErrCompacted)
	}
	w := newWalker(l.book, l.headerReader(), l.book.startAtOffset(offset))
	for w.index <= l.last {
		e, more, err := w.step()
		if err != nil {
			return 0, fmt.Errorf("index at offset %d: %w", offset, err)
		}
		if !more {
			break
		}
		if e.NonData == nil && e.Offset <= offset && offset < e.Header.NextOffset() {
			return e.Index, nil
		}
		if e.Offset > offset {
			break
		}
	}
	return 0, fmt.Errorf("index at offset %d: no batch holds it: %w", offset, raft.ErrUnavailable)
}

// startAtOffset returns the known position with the largest index whose
// offset is at or below offset, at or above the entry after the snapshot:
// a count for the entry holding offset starts there.
func (b *book) startAtOffset(offset int64) Position {
	best := Position{Index: b.snapshot.Index + 1, Offset: b.snapshot.NextOffset}
	consider := func(p Position) {
		if p.Offset <= offset && p.Index > best.Index {
			best = p
		}
	}
	if at := sort.Search(len(b.anchors), func(k int) bool { return b.anchors[k].Offset > offset }); at > 0 {
		consider(Position(b.anchors[at-1]))
	}
	if at := sort.Search(len(b.fine), func(k int) bool { return b.fine[k].Offset > offset }); at > 0 {
		consider(Position(b.fine[at-1]))
	}
	if at := sort.Search(len(b.nonData), func(k int) bool { return b.nonData[k].NextOffset > offset }); at > 0 {
		e := b.nonData[at-1]
		consider(Position{Index: e.Index, Offset: e.NextOffset})
	}
	return best
}
