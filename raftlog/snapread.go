package raftlog

import (
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
)

// ErrSnapshotChanged: the snapshot a copy of the data below it was asked
// for is no longer the log's (a later compaction, retention or
// DeleteRecords replaced it), or the data asked for is gone. The follower
// starts its copy again from the snapshot raft sends it next.
var ErrSnapshotChanged = errors.New("raftlog: not the current snapshot")

// SnapshotData is one piece of the data below a snapshot, as a follower
// installing it copies it (design §2.2, §3.6).
type SnapshotData struct {
	// Batches are whole batches as stored, in offset order, below the
	// snapshot's next offset: the first holds the offset asked for or
	// starts after it (a read at the log start offset, which DeleteRecords
	// may have moved inside a batch, gets that batch whole), the others
	// follow it.
	Batches []byte
	// Next is the offset to ask for next: the offset after the last batch,
	// or the snapshot's next offset when nothing is left below it.
	Next int64
}

// Done says the copy reached the snapshot's next offset.
func (d SnapshotData) Done(nextOffset int64) bool { return d.Next >= nextOffset }

// ReadSnapshotData returns the batches from offset below the next offset
// of the snapshot at (index, term), at most maxBytes of them unless the
// first is larger (it is always returned whole, as a fetch returns it).
// The snapshot must be the log's current one, checked before and after
// the read: compaction records a new snapshot before any data below it is
// deleted or rewritten, so a read that finds the same snapshot afterwards
// read that snapshot's data. Anything else, or an offset below the log
// start, is ErrSnapshotChanged. Read side; safe concurrently with the
// writer.
func (l *Log) ReadSnapshotData(index, term uint64, offset int64, maxBytes int) (SnapshotData, error) {
	next, err := l.currentSnapshotNext(index, term)
	if err != nil {
		return SnapshotData{}, err
	}
	if offset > next {
		return SnapshotData{}, fmt.Errorf("raft log %s: snapshot data at offset %d past the snapshot's next offset %d: %w",
			l.dir, offset, next, storage.ErrOffsetOutOfRange)
	}
	// The first batch read may hold offset: a follower asks at batch
	// boundaries but for its first piece, at the log start offset, which
	// may lie inside a batch; that batch is sent whole.
	b, err := l.storage.Read(offset, maxBytes, next)
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		return SnapshotData{}, fmt.Errorf("raft log %s: snapshot data at offset %d: %w (%w)", l.dir, offset, ErrSnapshotChanged, err)
	}
	if err != nil {
		return SnapshotData{}, fmt.Errorf("raft log %s: snapshot data at offset %d: %w", l.dir, offset, err)
	}
	data, err := snapshotPiece(b, offset, next)
	if err != nil {
		return SnapshotData{}, fmt.Errorf("raft log %s: snapshot data at offset %d: %w", l.dir, offset, err)
	}
	if _, err := l.currentSnapshotNext(index, term); err != nil {
		return SnapshotData{}, err
	}
	return data, nil
}

// currentSnapshotNext returns the next offset of the log's snapshot when
// it is the one at (index, term), ErrSnapshotChanged otherwise.
func (l *Log) currentSnapshotNext(index, term uint64) (int64, error) {
	l.mu.RLock()
	s := l.book.snapshot
	l.mu.RUnlock()
	if s.Index != index || s.Term != term {
		return 0, fmt.Errorf("raft log %s: snapshot at %d term %d asked for, the log's is at %d term %d: %w",
			l.dir, index, term, s.Index, s.Term, ErrSnapshotChanged)
	}
	return s.NextOffset, nil
}

// snapshotPiece finds where the next read after the batches b read at
// offset starts.
func snapshotPiece(b []byte, offset, next int64) (SnapshotData, error) {
	if len(b) == 0 {
		// Nothing is based at or after offset below next: compaction left
		// a gap up to it, or the copy is complete.
		return SnapshotData{Next: next}, nil
	}
	last, err := CheckFirstSnapshotData(b, offset, next)
	if err != nil {
		return SnapshotData{}, err
	}
	return SnapshotData{Batches: b, Next: last}, nil
}

// CheckSnapshotData verifies a piece of snapshot data before a follower
// keeps it: whole batches, each with a valid CRC32C, based at or after
// from, in ascending offsets without overlap, the last ending below next
// (the snapshot's next offset). Compaction leaves gaps between batches, so
// offsets need not be contiguous. It returns the offset after the last
// batch, where the next piece starts; b must hold at least one batch.
func CheckSnapshotData(b []byte, from, next int64) (int64, error) {
	return checkSnapshotData(b, from, next, false)
}

// CheckFirstSnapshotData is CheckSnapshotData for the first piece of a
// copy, read at the descriptor's log start offset: its first batch may
// also begin below from when it holds from, as after a DeleteRecords to
// an offset inside a batch. The copy keeps that batch whole (the log
// start offset then lies inside it, as on the sender).
func CheckFirstSnapshotData(b []byte, from, next int64) (int64, error) {
	return checkSnapshotData(b, from, next, true)
}

func checkSnapshotData(b []byte, from, next int64, mayHoldFrom bool) (int64, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("snapshot data at offset %d: no batch: %w", from, ErrInvalid)
	}
	at := from
	for first := true; len(b) > 0; first = false {
		h, _, rest, err := batch.Next(b)
		if err != nil {
			return 0, fmt.Errorf("snapshot data at offset %d: %w", at, err)
		}
		below := h.BaseOffset < at && !(first && mayHoldFrom && h.LastOffset() >= at)
		if below || h.LastOffsetDelta < 0 || h.NextOffset() <= h.BaseOffset || h.NextOffset() > next {
			return 0, fmt.Errorf("snapshot data: batch [%d, %d] after offset %d, below %d: %w",
				h.BaseOffset, h.LastOffset(), at, next, ErrInvalid)
		}
		at, b = h.NextOffset(), rest
	}
	return at, nil
}
