package storage

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// ReplaceSegment replaces the batches of the sealed segment at base with
// batches, the compacted copy: whole valid batches, not overlapping, in
// increasing offset order, within [base, the segment's NextOffset); gaps are
// allowed. (That the copy holds the same or fewer records is the
// compactor's promise; it is not checked.) The segment keeps its offset
// range and creation time and its indexes are rebuilt.
//
// Crash safety: the copy is written and synced as <base>.log.cleaned; the old
// index files are removed (a sealed segment without index files gets them
// rebuilt by recovery); the copy is renamed over <base>.log, the commit
// point; then new index files are written atomically. A crash before the
// rename leaves the old data and a leftover that recovery removes.
func (l *Log) ReplaceSegment(base int64, batches []byte) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	index, old := l.findSealed(base)
	if old == nil {
		return fmt.Errorf("replace segment %d of log %s: no such sealed segment: %w", base, l.dir, ErrNotFound)
	}
	built, err := planReplacement(batches, base, old.nextOffset, l.intervalBytes())
	if err != nil {
		return fmt.Errorf("replace segment %d of log %s: %w", base, l.dir, err)
	}
	if err := l.replaceSegment(index, old, batches, built); err != nil {
		return fmt.Errorf("replace segment %d of log %s: %w", base, l.dir, err)
	}
	return nil
}

func (l *Log) findSealed(base int64) (int, *segment) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i, s := range l.segments[:len(l.segments)-1] {
		if s.base == base {
			return i, s
		}
	}
	return 0, nil
}

// planReplacement validates a compacted copy and computes its indexes.
func planReplacement(batches []byte, base, next, intervalBytes int64) (builtIndexes, error) {
	built := builtIndexes{indexer: newIndexer(base, intervalBytes)}
	expected := base
	for rest, position := batches, int64(0); len(rest) > 0; {
		h, whole, remaining, err := batch.Next(rest)
		if err != nil {
			return builtIndexes{}, fmt.Errorf("batch at position %d: %w: %w", position, ErrInvalidBatches, err)
		}
		if h.BaseOffset < expected || h.LastOffsetDelta < 0 || h.NextOffset() > next {
			return builtIndexes{}, fmt.Errorf("batch at position %d has offsets [%d, %d), want within [%d, %d): %w",
				position, h.BaseOffset, h.NextOffset(), expected, next, ErrInvalidBatches)
		}
		built.add(h, position)
		expected, position, rest = h.NextOffset(), position+int64(len(whole)), remaining
	}
	built.seal()
	return built, nil
}

// add indexes one batch.
func (b *builtIndexes) add(h batch.Header, position int64) {
	offset, time := b.indexer.add(h, position)
	if offset != nil {
		b.offsets = append(b.offsets, *offset)
	}
	if time != nil {
		b.times = append(b.times, *time)
	}
}

// seal ends the time index with the segment's largest timestamp.
func (b *builtIndexes) seal() {
	if final, ok := b.indexer.seal(); ok {
		b.times = append(b.times, final)
	}
}

// replaceSegment runs the crash-safe file sequence described on
// ReplaceSegment and swaps the segment in memory.
func (l *Log) replaceSegment(index int, old *segment, batches []byte, built builtIndexes) error {
	// Readers holding the old segment must never need its index files,
	// which are about to go.
	if err := l.loadIndexes(old); err != nil {
		return err
	}
	// Recovery trusts segments before the recovery point without checking
	// offset continuity, which compaction breaks.
	if l.persistedRecoveryBase <= old.base {
		if err := l.checkpoint(false, l.StartOffset(), 0); err != nil {
			return err
		}
	}
	if err := old.closeIndexFiles(); err != nil {
		return fmt.Errorf("close index files: %w", err)
	}
	logName := l.segmentPath(old.base, logSuffix)
	if err := l.writeCleaned(logName+cleanedSuffix, batches); err != nil {
		return err
	}
	if err := l.swapLogFile(old.base, logName); err != nil {
		return err
	}
	f, err := l.fs.Open(logName)
	if err != nil {
		// Disk and memory now differ, but both hold valid data for the
		// segment's range; the next Open uses the disk.
		return fmt.Errorf("open compacted segment: %w", err)
	}
	s := newSegment(old.base, f, old.createdMs)
	s.sizeBytes, s.nextOffset = int64(len(batches)), old.nextOffset
	s.offsets, s.times, s.indexesLoaded = built.offsets, built.times, true
	s.maxTimestampMs, s.maxTimestampOffset = built.indexer.maxTimestampMs, built.indexer.maxTimestampOffset
	indexErr := l.writeIndexFilesAtomic(s)
	l.mu.Lock()
	l.segments[index] = s
	l.dirGeneration++
	l.mu.Unlock()
	if err := old.retire(); err != nil {
		return fmt.Errorf("close replaced segment: %w", err)
	}
	// Missing index files are rebuilt by the next Open; the log is consistent.
	return indexErr
}

// writeCleaned writes the compacted copy and makes its data durable.
func (l *Log) writeCleaned(name string, batches []byte) error {
	f, err := l.fs.Create(name)
	if err != nil {
		return fmt.Errorf("create compacted copy: %w", err)
	}
	err = writeAll(f, batches)
	if err == nil {
		if syncErr := f.Sync(); syncErr != nil {
			err = l.fail(fmt.Errorf("sync compacted copy: %w", syncErr))
		}
	}
	if closeErr := f.Close(); err == nil && closeErr != nil {
		err = closeErr
	}
	if err != nil {
		_ = l.fs.Remove(name) // best effort: recovery removes leftovers
		return fmt.Errorf("write compacted copy: %w", err)
	}
	return nil
}

// swapLogFile removes the old index files, then renames the compacted copy
// over the .log file, syncing the directory after each step.
func (l *Log) swapLogFile(base int64, logName string) error {
	cleaned := logName + cleanedSuffix
	if err := l.removeIndexFiles(base); err != nil {
		_ = l.fs.Remove(cleaned)
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("sync directory: %w", err))
	}
	if err := l.fs.Rename(cleaned, logName); err != nil {
		_ = l.fs.Remove(cleaned)
		return fmt.Errorf("rename compacted copy: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("sync directory: %w", err))
	}
	return nil
}

func (l *Log) removeIndexFiles(base int64) error {
	for _, suffix := range []string{offsetIndexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(l.segmentPath(base, suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove index of segment %d: %w", base, err)
		}
	}
	return nil
}

// writeIndexFilesAtomic writes both index files of a sealed segment, each
// synced and renamed into place.
func (l *Log) writeIndexFilesAtomic(s *segment) error {
	offsetBytes, timeBytes := encodeIndexes(s.offsets, s.times)
	if err := vfs.WriteFileAtomic(l.fs, l.segmentPath(s.base, offsetIndexSuffix), offsetBytes); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := vfs.WriteFileAtomic(l.fs, l.segmentPath(s.base, timeIndexSuffix), timeBytes); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}
