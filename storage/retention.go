package storage

import (
	"errors"
	"fmt"
	"path/filepath"
)

// DeleteOldestSegment deletes the oldest segment and advances the start
// offset to the base offset of the next one. When the oldest is the active
// segment and holds batches, it rolls first, so the log always keeps an
// active segment; when the only segment is the empty active one it returns
// ErrNotFound.
func (l *Log) DeleteOldestSegment(nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.RLock()
	count, activeBytes := len(l.segments), l.active().sizeBytes
	l.mu.RUnlock()
	if count == 1 {
		if activeBytes == 0 {
			return fmt.Errorf("delete oldest segment of log %s: only the empty active segment: %w", l.dir, ErrNotFound)
		}
		if err := l.roll(nowMs); err != nil {
			return fmt.Errorf("delete oldest segment of log %s: %w", l.dir, err)
		}
	}
	// The start may already lie past the oldest segment: after advancing it
	// to the log end, a roll leaves the old segment wholly below it.
	if err := l.advanceStart(max(l.StartOffset(), l.segments[1].base)); err != nil {
		return fmt.Errorf("delete oldest segment of log %s: %w", l.dir, err)
	}
	return nil
}

// AdvanceStartOffset moves the start offset up to offset (DeleteRecords):
// it must lie in [StartOffset, NextOffset]. The new start is durable when it
// returns, and segments wholly below it are deleted.
func (l *Log) AdvanceStartOffset(offset int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.RLock()
	start, next := l.startOffset, l.nextOffset
	l.mu.RUnlock()
	if offset < start || offset > next {
		return fmt.Errorf("advance start of log %s to %d: outside [%d, %d]: %w", l.dir, offset, start, next, ErrOffsetOutOfRange)
	}
	if offset == start {
		return nil
	}
	if err := l.advanceStart(offset); err != nil {
		return fmt.Errorf("advance start of log %s to %d: %w", l.dir, offset, err)
	}
	return nil
}

// advanceStart persists a new start offset with a checkpoint (so the
// recovery point never falls below it), then deletes the sealed segments
// wholly below it. A crash before the files are gone leaves segments the
// state file no longer lists; recovery removes them.
func (l *Log) advanceStart(startOffset int64) error {
	drop := 0
	for drop < len(l.segments)-1 && l.segments[drop+1].base <= startOffset {
		drop++
	}
	if err := l.checkpoint(false, startOffset, drop); err != nil {
		return err
	}
	l.mu.Lock()
	dropped := append([]*segment(nil), l.segments[:drop]...)
	l.segments = append([]*segment(nil), l.segments[drop:]...)
	l.startOffset = startOffset
	if drop > 0 {
		l.dirGeneration++
	}
	l.mu.Unlock()
	var errs []error
	for _, s := range dropped {
		errs = append(errs, s.closeIndexFiles(), s.retire(), l.removeSegmentFiles(s.base))
	}
	return errors.Join(errs...)
}

// Close syncs the log, records a clean shutdown with the recovery point at
// the log end, and closes the files, so the next Open reads no batch data.
// Readers still running keep their files open until they finish. Closing a
// failed log only releases its files and returns the failure.
func (l *Log) Close() error {
	if err := l.checkWritable(); err != nil {
		if !errors.Is(err, ErrClosed) {
			_ = l.closeFiles() // nothing on disk is trusted; the failure is the news
		}
		return err
	}
	if err := l.checkpoint(true, l.StartOffset(), 0); err != nil {
		_ = l.closeFiles()
		return fmt.Errorf("close log %s: %w", l.dir, err)
	}
	if err := l.closeFiles(); err != nil {
		return fmt.Errorf("close log %s: %w", l.dir, err)
	}
	return nil
}

// Delete closes the log without syncing and removes its directory (topic
// deletion). It works on a failed or closed log too.
func (l *Log) Delete() error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if !closed {
		// The files are about to be removed; their close errors do not matter.
		_ = l.closeFiles()
	}
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	if err := l.fs.SyncDir(filepath.Dir(filepath.Clean(l.dir))); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}
