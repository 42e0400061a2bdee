package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/cairnlog/cairn/storage/vfs"
)

// ErrNotBatchBoundary: TruncateSuffix was given an offset inside a batch (or
// inside a gap compaction left) instead of the base offset of a batch.
var ErrNotBatchBoundary = errors.New("storage: offset is not a batch boundary")

// TruncateSuffix removes every batch at or above offset, so the log ends at
// offset and the next Append continues there (a Raft follower cutting the
// entries a new leader overrides). offset must be the base offset of a
// batch in [StartOffset, NextOffset], or NextOffset itself, a no-op;
// anything else returns ErrOffsetOutOfRange or ErrNotBatchBoundary and
// changes nothing. It is a mutation: the caller serializes it with the
// others.
//
// Crash safety: it first syncs the whole log, then writes the state file
// with the recovery point at the cut, so recovery keeps every batch before
// it and validates whatever follows instead of trusting it. Then the
// segment holding offset is truncated and synced before the later segments
// are removed, so a power cut at any point recovers either the old log
// (nothing cut yet: the rest still validates) or exactly the prefix (the
// cut segment ends at offset, so no later segment continues it). One
// exception: validation takes an offset gap for a torn tail, so where
// compaction left gaps after offset, a crash before the cut is synced
// recovers the old log only up to the first of them (still a prefix
// holding every batch below offset). A Raft log never cuts compacted
// batches: they are committed.
//
// Readers: the cut segment is replaced in memory before its file is
// truncated, and the truncation waits until the readers of the old segment
// let go of it, so a racing read returns the batches as they were or as
// they are, never a short read; a read spanning segments starts over when a
// cut lands between two of them.
//
// A failure after the log started changing on disk makes it failed
// (ErrFailed); reopening recovers either the old log or the prefix.
func (l *Log) TruncateSuffix(offset int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	c, err := l.planCut(offset)
	if err != nil {
		return fmt.Errorf("truncate log %s at %d: %w", l.dir, offset, err)
	}
	if c.segment == nil {
		return nil
	}
	if err := l.cut(c); err != nil {
		return fmt.Errorf("truncate log %s at %d: %w", l.dir, offset, err)
	}
	return nil
}

// cutPlan says where a suffix truncation cuts: segment (index in the list)
// holds offset, whose batch starts at position. A nil segment means there
// is nothing to cut.
type cutPlan struct {
	index    int
	segment  *segment
	offset   int64
	position int64
}

// planCut checks offset and finds the segment and the byte position of the
// batch starting there.
func (l *Log) planCut(offset int64) (cutPlan, error) {
	l.mu.RLock()
	start, next := l.startOffset, l.nextOffset
	l.mu.RUnlock()
	if offset < start || offset > next {
		return cutPlan{}, fmt.Errorf("outside [%d, %d]: %w", start, next, ErrOffsetOutOfRange)
	}
	if offset == next {
		return cutPlan{}, nil
	}
	segments, _, _, err := l.acquireFrom(offset, 1)
	if err != nil {
		return cutPlan{}, err
	}
	defer segments.release()
	view := segments[0]
	position, err := l.batchPosition(view, offset)
	if err != nil {
		return cutPlan{}, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i, s := range l.segments {
		if s == view.s {
			return cutPlan{index: i, segment: s, offset: offset, position: position}, nil
		}
	}
	return cutPlan{}, fmt.Errorf("segment %d left the log during the cut", view.s.base)
}

// batchPosition returns the position of the batch with base offset offset
// in the segment of view; the segment's base is always a boundary (cutting
// there empties the segment).
func (l *Log) batchPosition(view segmentView, offset int64) (int64, error) {
	if offset == view.s.base {
		return 0, nil
	}
	from, err := l.floorPosition(view, offset)
	if err != nil {
		return 0, err
	}
	scan := newScanner(view.s.log, from, view.sizeBytes, false, readWindowBytes)
	for {
		h, _, position, err := scan.next()
		if isEOF(err) {
			return 0, fmt.Errorf("no batch of segment %d starts there: %w", view.s.base, ErrNotBatchBoundary)
		}
		if err != nil {
			return 0, fmt.Errorf("segment %d: %w", view.s.base, err)
		}
		switch {
		case h.BaseOffset == offset:
			return position, nil
		case h.NextOffset() > offset:
			return 0, fmt.Errorf("batch [%d, %d) of segment %d holds it: %w",
				h.BaseOffset, h.NextOffset(), view.s.base, ErrNotBatchBoundary)
		}
	}
}

// cut runs the crash-safe sequence described on TruncateSuffix.
func (l *Log) cut(c cutPlan) error {
	if _, err := l.Sync(); err != nil {
		return err
	}
	if err := l.syncIndexFiles(); err != nil {
		return err
	}
	kept, err := l.prefixSegment(c)
	if err != nil {
		return err
	}
	if err := l.writeState(l.cutState(c, kept)); err != nil {
		_ = kept.log.Close() // opened for reading and appending; nothing written
		return err
	}
	later := l.publishCut(c, kept)
	// From here on the disk is changing: a failure leaves it unknown until
	// recovery sorts it out, as after a failed fsync.
	if err := l.cutFiles(c, kept, later); err != nil {
		return l.fail(err)
	}
	if err := l.checkpoint(false, l.StartOffset(), 0); err != nil {
		return l.fail(err)
	}
	return nil
}

// prefixSegment returns a new segment for the part of c's segment before
// the cut, on a file handle of its own (the old one closes when the old
// segment's readers are done): its index entries below the cut, its largest
// timestamp, and an indexer to continue appending.
func (l *Log) prefixSegment(c cutPlan) (*segment, error) {
	old := c.segment
	if err := l.loadIndexes(old); err != nil {
		return nil, err
	}
	l.mu.RLock()
	rel := relative(old.base, c.offset)
	offsets := keptEntries(old.offsets, rel, func(e offsetEntry) uint32 { return e.relativeOffset })
	times := keptEntries(old.times, rel, func(e timeEntry) uint32 { return e.relativeOffset })
	createdMs := old.createdMs
	l.mu.RUnlock()
	maxTimestampMs, maxTimestampOffset, err := l.prefixMaxTimestamp(old, offsets, times, c.position)
	if err != nil {
		return nil, err
	}
	f, err := l.fs.OpenAppend(l.segmentPath(old.base, logSuffix))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", old.base, err)
	}
	s := newSegment(old.base, f, createdMs)
	s.sizeBytes, s.nextOffset = c.position, c.offset
	s.offsets, s.times, s.indexesLoaded = offsets, times, true
	s.maxTimestampMs, s.maxTimestampOffset = maxTimestampMs, maxTimestampOffset
	s.indexer = resumeIndexer(s.base, l.intervalBytes(), offsets, times, maxTimestampMs, maxTimestampOffset)
	return s, nil
}

// keptEntries returns a copy of the index entries below rel.
func keptEntries[E offsetEntry | timeEntry](entries []E, rel uint32, relativeOffset func(E) uint32) []E {
	n := 0
	for n < len(entries) && relativeOffset(entries[n]) < rel {
		n++
	}
	return slices.Clone(entries[:n])
}

// prefixMaxTimestamp returns the largest MaxTimestamp of the batches of s
// before position and the base offset of the first batch holding it. Time
// entries are running maxima, so the last one kept is the maximum up to its
// batch, which only a batch after it can exceed: the scan starts at the
// offset index floor of that batch, not at the start of the segment.
func (l *Log) prefixMaxTimestamp(s *segment, offsets []offsetEntry, times []timeEntry, position int64) (int64, int64, error) {
	maxTimestampMs, maxTimestampOffset, from := int64(noTimestamp), int64(-1), int64(0)
	if len(times) > 0 {
		last := times[len(times)-1]
		maxTimestampMs, maxTimestampOffset = last.timestampMs, s.base+int64(last.relativeOffset)
		from = floorPosition(offsets, last.relativeOffset)
	}
	scan := newScanner(s.log, from, position, false, recoveryWindowBytes)
	for {
		h, _, _, err := scan.next()
		if isEOF(err) {
			return maxTimestampMs, maxTimestampOffset, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("scan segment %d: %w", s.base, err)
		}
		if h.MaxTimestamp > maxTimestampMs {
			maxTimestampMs, maxTimestampOffset = h.MaxTimestamp, h.BaseOffset
		}
	}
}

// cutState is the state file written before anything is cut: the segments
// up to the cut one, the recovery point at the cut. Everything before it
// was just synced.
func (l *Log) cutState(c cutPlan, kept *segment) logState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	st := logState{
		startOffset: l.startOffset,
		recovery: recoveryPoint{
			nextOffset:         c.offset,
			segmentBase:        kept.base,
			positionBytes:      c.position,
			offsetIndexEntries: uint32(len(kept.offsets)),
			timeIndexEntries:   uint32(len(kept.times)),
			maxTimestampMs:     kept.maxTimestampMs,
			maxTimestampOffset: kept.maxTimestampOffset,
		},
	}
	for _, s := range l.segments[:c.index+1] {
		st.segments = append(st.segments, segmentRecord{base: s.base, createdMs: s.createdMs})
	}
	return st
}

// publishCut makes readers and Sync see the truncated log: the kept segment
// replaces the cut one, later segments leave the list. syncMu is taken so
// no Sync that started on the old log reports its end afterwards. It
// returns the bases of the later segments, whose files are still there.
func (l *Log) publishCut(c cutPlan, kept *segment) (later []int64) {
	l.syncMu.Lock()
	l.mu.Lock()
	dropped := append([]*segment(nil), l.segments[c.index:]...)
	l.segments = append(l.segments[:c.index:c.index], kept)
	l.nextOffset = c.offset
	l.syncedNextOffset = min(l.syncedNextOffset, c.offset)
	kept.writeGeneration = 1 // the truncation must reach the disk
	l.truncations++
	l.mu.Unlock()
	l.syncMu.Unlock()
	for i, s := range dropped {
		// Their files are synced or about to go; a late close error has
		// nothing left to lose.
		_ = s.closeIndexFiles()
		_ = s.retire()
		if i > 0 {
			later = append(later, s.base)
		}
	}
	return later
}

// cutFiles truncates the cut segment once its old readers are gone and
// syncs it, then removes the later segments and syncs the directory, then
// cuts the kept segment's indexes (synced by the checkpoint that
// follows). The order is what makes a crash recover the old log or the
// prefix, never a mixture: see TruncateSuffix.
func (l *Log) cutFiles(c cutPlan, kept *segment, later []int64) error {
	<-c.segment.drained
	if err := kept.log.Truncate(c.position); err != nil {
		return fmt.Errorf("truncate segment %d at %d: %w", kept.base, c.position, err)
	}
	if err := kept.log.Sync(); err != nil {
		return fmt.Errorf("sync segment %d: %w", kept.base, err)
	}
	for _, base := range later {
		if err := l.removeSegmentFiles(base); err != nil {
			return err
		}
	}
	if len(later) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("sync directory: %w", err)
		}
	}
	return l.cutIndexFiles(kept)
}

// cutIndexFiles cuts the kept segment's index files to its entries and
// keeps them open for appends. Truncating in place, rather than rewriting,
// keeps on disk at every moment at least the entries the state file counts,
// so a crash never makes recovery rescan the segment from its start. A file
// that does not begin with the entries (they were rebuilt in memory after
// damage) is rewritten.
func (l *Log) cutIndexFiles(s *segment) error {
	offsetBytes, timeBytes := encodeIndexes(s.offsets, s.times)
	for _, file := range []struct {
		suffix string
		data   []byte
		handle *vfs.File
	}{{offsetIndexSuffix, offsetBytes, &s.offsetIndexFile}, {timeIndexSuffix, timeBytes, &s.timeIndexFile}} {
		f, err := l.openIndexFile(l.segmentPath(s.base, file.suffix))
		if err != nil {
			return fmt.Errorf("open index of segment %d: %w", s.base, err)
		}
		*file.handle = f
		if err := cutIndexFile(f, file.data); err != nil {
			return fmt.Errorf("cut index of segment %d: %w", s.base, err)
		}
	}
	s.indexUnsynced = true
	return nil
}

// openIndexFile opens an index file for appending, creating it if missing.
func (l *Log) openIndexFile(name string) (vfs.File, error) {
	f, err := l.fs.OpenAppend(name)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	l.mu.Lock() // Sync reads the generation concurrently
	l.dirGeneration++
	l.mu.Unlock()
	return l.fs.Create(name)
}

// cutIndexFile makes f hold exactly entries: a truncation when f begins
// with them, a rewrite otherwise.
func cutIndexFile(f vfs.File, entries []byte) error {
	size, err := f.Size()
	if err != nil {
		return err
	}
	if size >= int64(len(entries)) {
		current := make([]byte, len(entries))
		if _, err := f.ReadAt(current, 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if bytes.Equal(current, entries) {
			return f.Truncate(int64(len(entries)))
		}
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	return writeAll(f, entries)
}
