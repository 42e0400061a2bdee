package raftlog

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/cairnlog/cairn/storage"
)

// raft-meta rewrite policy. Variables so that tests can make rewrites
// frequent.
var (
	// metaRewriteBytes: a file smaller than this is never rewritten.
	metaRewriteBytes int64 = 1 << 20
	// anchorIntervalBytes: a rewrite keeps one persisted anchor per this
	// many bytes of log (and the last one), so anchors grow with the data
	// (16 k for 1 TB), not with the number of checkpoints. A count from
	// the nearest kept anchor reads at most about this much.
	anchorIntervalBytes int64 = 64 << 20
	// metaRewriteRatio: a file is rewritten once it is this many times
	// the size of its live records.
	metaRewriteRatio int64 = 4
)

// rewriteMetaLocked replaces raft-meta by a file of the next generation
// holding only its live records (the Snapshot, the non-data entries and
// the thinned anchors above it; no Truncate records, no voided or
// compacted ones) when the file passed metaRewriteBytes and
// metaRewriteRatio times their size. The new file is written and synced
// whole before it is renamed over the old one (vfs.WriteFileAtomic), so a
// crash leaves the old file or the new one; the new one is a generation
// ahead of raft-state until Checkpoint writes raft-state next, which
// ScanMeta reads with the new file's own size as its recovery point. The
// caller holds syncMu and runs on the write side, so no record is
// written and no fsync runs meanwhile.
func (l *Log) rewriteMetaLocked() error {
	position := segmentPositions(l.storage.Segments())
	l.mu.RLock()
	written := l.metaWritten
	records, anchors := l.book.liveRecords(anchorIntervalBytes, position)
	l.mu.RUnlock()
	if written < metaRewriteBytes {
		return nil
	}
	live := int64(metaHeaderBytes)
	for _, r := range records {
		b, err := appendRecord(nil, r)
		if err != nil {
			return l.fail(fmt.Errorf("rewrite %s: %w", metaFileName, err))
		}
		live += int64(len(b))
	}
	if written < metaRewriteRatio*live {
		return nil
	}
	path := filepath.Join(l.dir, metaFileName)
	h := MetaHeader{GroupID: l.persisted.GroupID, ReplicaID: l.persisted.ReplicaID, Generation: l.metaGeneration + 1}
	h, err := writeMeta(l.fs, path, h, records)
	if err != nil {
		return l.fail(fmt.Errorf("rewrite %s: %w", metaFileName, err))
	}
	f, err := l.fs.OpenAppend(path)
	if err != nil {
		return l.fail(fmt.Errorf("rewrite %s: %w", metaFileName, err))
	}
	old := l.meta
	l.meta, l.metaSynced, l.metaGeneration = f, h.WrittenBytes, h.Generation
	l.mu.Lock()
	l.metaWritten, l.metaVital = h.WrittenBytes, h.WrittenBytes
	l.book.anchors = anchors
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return l.fail(fmt.Errorf("rewrite %s: close the old file: %w", metaFileName, err))
	}
	return nil
}

// segmentPositions returns a function estimating the byte position of an
// offset in the log: the bytes of the segments before the one holding it,
// plus its share of that segment's bytes, as if its batches were of equal
// size per offset. Anchors need no more than an estimate to be spread out.
func segmentPositions(segs []storage.SegmentInfo) func(offset int64) int64 {
	before := make([]int64, len(segs))
	var total int64
	for k, s := range segs {
		before[k] = total
		total += s.SizeBytes
	}
	return func(offset int64) int64 {
		k := sort.Search(len(segs), func(k int) bool { return segs[k].NextOffset > offset })
		if k == len(segs) {
			return total
		}
		s := segs[k]
		if span := s.NextOffset - s.BaseOffset; span > 0 && offset > s.BaseOffset {
			return before[k] + s.SizeBytes*(offset-s.BaseOffset)/span
		}
		return before[k]
	}
}
