package raftlog

import (
	"fmt"

	"github.com/cairnlog/cairn/storage"
)

// Verify reads the whole log: every stored batch, its CRC and its place
// (storage.Log.Verify), and every entry above the compaction point counted
// from there to the end against raft-meta, each data batch where the
// count puts it and stamped with its entry's term. Any disagreement, and
// any batch that is no valid batch, is a *storage.CorruptionError; a read
// that failed is returned as such. Open counts only from the last anchor and
// trusts the bytes before it, as a partition's log is too large to read
// at each start; a small log that must refuse to start on any damage (a
// node's metadata log) calls this after Open, before anything runs on it.
func (l *Log) Verify() error {
	if err := l.storage.Verify(); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	from := Position{Index: l.book.snapshot.Index + 1, Offset: l.book.snapshot.NextOffset}
	end, err := walkToEnd(l.book, l.headerReader(), from)
	switch {
	case storage.IsDamage(err):
		return corruption(l.dir, "verify from entry %d: %v", from.Index, err)
	case err != nil:
		return fmt.Errorf("verify raft log %s from entry %d: %w", l.dir, from.Index, err)
	case end.mismatch != nil:
		return corruption(l.dir, "verify from entry %d: %v", from.Index, end.mismatch)
	case end.Index != l.last+1:
		return corruption(l.dir, "verify from entry %d: the segments hold entries up to %d, the log ends at %d", from.Index, end.Index-1, l.last)
	}
	return nil
}
