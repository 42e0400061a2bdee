package storage

import (
	"errors"
	"fmt"
	"math"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Append writes batches (one or more whole RecordBatch v2 batches back to
// back, the first starting at NextOffset, each continuing where the previous
// ends) to the active segment, rolling first when the segment is full or
// old. It does not sync. Invalid input returns ErrInvalidBatches and changes
// nothing. A failed write (full disk, I/O error) is undone and returned
// wrapped, so errors.Is(err, syscall.ENOSPC) works and a later Append may
// succeed; when the undo fails too, the log becomes failed (ErrFailed).
func (l *Log) Append(batches []byte, nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	headers, err := splitAppend(batches, l.NextOffset())
	if err != nil {
		return fmt.Errorf("append to log %s: %w", l.dir, err)
	}
	l.mu.RLock()
	cfg, active := l.cfg, l.active()
	l.mu.RUnlock()
	lastOffset := headers[len(headers)-1].header.LastOffset()
	if shouldRoll(cfg, active.base, active.sizeBytes, active.createdMs, int64(len(batches)), lastOffset, nowMs) {
		if err := l.roll(nowMs); err != nil {
			return fmt.Errorf("append to log %s: %w", l.dir, err)
		}
		active = l.active()
	}
	if err := l.write(active, batches, headers, cfg.IndexIntervalBytes, nowMs); err != nil {
		return fmt.Errorf("append to log %s: %w", l.dir, err)
	}
	return nil
}

// appendedBatch is one batch of an Append and where it starts in the input.
type appendedBatch struct {
	header   batch.Header
	position int64
}

// splitAppend checks that batches are whole, valid batches continuing at
// next without gaps, and returns their headers.
func splitAppend(batches []byte, next int64) ([]appendedBatch, error) {
	if len(batches) == 0 {
		return nil, fmt.Errorf("no batches: %w", ErrInvalidBatches)
	}
	var headers []appendedBatch
	for rest, position := batches, int64(0); len(rest) > 0; {
		h, whole, remaining, err := batch.Next(rest)
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w: %w", len(headers), ErrInvalidBatches, err)
		}
		if h.BaseOffset != next || h.LastOffsetDelta < 0 {
			return nil, fmt.Errorf("batch %d covers offsets [%d, %d], want it to start at %d: %w",
				len(headers), h.BaseOffset, h.LastOffset(), next, ErrInvalidBatches)
		}
		headers = append(headers, appendedBatch{header: h, position: position})
		next, position, rest = h.NextOffset(), position+int64(len(whole)), remaining
	}
	return headers, nil
}

// shouldRoll decides whether an append of appendBytes ending at lastOffset
// must go to a new segment. An empty segment never rolls: it takes any append.
func shouldRoll(cfg Config, base, sizeBytes, createdMs, appendBytes, lastOffset, nowMs int64) bool {
	if sizeBytes == 0 {
		return false
	}
	return sizeBytes+appendBytes > cfg.SegmentBytes ||
		nowMs-createdMs > cfg.SegmentMs ||
		// Index entries hold 32-bit relative offsets and positions.
		lastOffset-base > math.MaxUint32 ||
		sizeBytes+appendBytes > math.MaxUint32
}

// write appends to segment s and its indexes, then publishes the result.
// The index interval comes from the config the append read: SetConfig
// runs beside an append (a topic's config changed while a replica
// appends) and leaves the indexer, which only the writer touches, alone.
func (l *Log) write(s *segment, batches []byte, headers []appendedBatch, intervalBytes, nowMs int64) error {
	previousSize := s.sizeBytes
	indexer := s.indexer // planned on a copy, kept only when the writes succeed
	indexer.intervalBytes = intervalBytes
	var offsets []offsetEntry
	var times []timeEntry
	var offsetBytes, timeBytes []byte
	for _, b := range headers {
		offset, time := indexer.add(b.header, previousSize+b.position)
		if offset != nil {
			offsets, offsetBytes = append(offsets, *offset), appendOffsetEntry(offsetBytes, *offset)
		}
		if time != nil {
			times, timeBytes = append(times, *time), appendTimeEntry(timeBytes, *time)
		}
	}
	if err := writeAll(s.log, batches); err != nil {
		return l.undoWrite(s, previousSize, fmt.Errorf("write segment %d: %w", s.base, err))
	}
	s.startWriteback(previousSize, previousSize+int64(len(batches)))
	if err := writeAll(s.offsetIndexFile, offsetBytes); err != nil {
		return l.undoWrite(s, previousSize, fmt.Errorf("write offset index %d: %w", s.base, err))
	}
	if err := writeAll(s.timeIndexFile, timeBytes); err != nil {
		return l.undoWrite(s, previousSize, fmt.Errorf("write time index %d: %w", s.base, err))
	}
	next := headers[len(headers)-1].header.NextOffset()
	l.mu.Lock()
	s.sizeBytes += int64(len(batches))
	s.nextOffset, l.nextOffset = next, next
	s.offsets, s.times = append(s.offsets, offsets...), append(s.times, times...)
	s.maxTimestampMs, s.maxTimestampOffset = indexer.maxTimestampMs, indexer.maxTimestampOffset
	if previousSize == 0 {
		s.createdMs = nowMs
	}
	s.writeGeneration++
	l.mu.Unlock()
	s.indexer = indexer
	s.indexUnsynced = s.indexUnsynced || len(offsetBytes)+len(timeBytes) > 0
	return nil
}

// writebackPageBytes is the page size writeback hints are rounded to.
const writebackPageBytes = 4096

// startWriteback asks the segment file to start writing back the whole pages
// below end not asked for yet. The flusher's fdatasync would otherwise start
// the device on them only when it runs; started now, the disk works while
// the next request is read and validated, and the sync has less left to wait
// for. The partial page at the end is left out: the next append writes into
// it, and a write into a page under writeback waits for the device.
func (s *segment) startWriteback(previousSize, end int64) {
	from := s.writebackFrom
	if from > previousSize { // the segment was cut back since
		from = previousSize - previousSize%writebackPageBytes
	}
	end -= end % writebackPageBytes
	if end <= from {
		return
	}
	vfs.StartWriteback(s.log, from, end-from)
	s.writebackFrom = end
}

// undoWrite cuts the segment and its indexes back to what was published
// before a failed write, which may have left a prefix of its bytes behind.
func (l *Log) undoWrite(s *segment, sizeBytes int64, cause error) error {
	err := errors.Join(
		s.log.Truncate(sizeBytes),
		s.offsetIndexFile.Truncate(int64(len(s.offsets))*offsetEntryBytes),
		s.timeIndexFile.Truncate(int64(len(s.times))*timeEntryBytes),
	)
	if err != nil {
		return l.fail(fmt.Errorf("%w; undo failed: %w", cause, err))
	}
	l.mu.Lock()
	s.writeGeneration++ // the truncation itself must reach the disk
	l.mu.Unlock()
	return cause
}

// roll seals the active segment and starts a new, empty one at NextOffset.
func (l *Log) roll(nowMs int64) error {
	old := l.active()
	if err := l.sealTimeIndex(old); err != nil {
		return err
	}
	s, err := l.createSegment(l.nextOffset, nowMs)
	if err != nil {
		return fmt.Errorf("roll: %w", err)
	}
	if !old.indexUnsynced {
		if err := old.closeIndexFiles(); err != nil {
			// The new segment is not published yet; give it up.
			l.abandonFiles(s.base, []vfs.File{s.log, s.offsetIndexFile, s.timeIndexFile})
			return fmt.Errorf("roll: close index of segment %d: %w", old.base, err)
		}
	}
	l.mu.Lock()
	l.segments = append(l.segments, s)
	l.dirGeneration++
	l.mu.Unlock()
	return nil
}

// sealTimeIndex gives the time index of s an entry for the batch holding
// its largest timestamp, if it lacks one, so the last entry of a sealed
// segment's time index is its largest timestamp.
func (l *Log) sealTimeIndex(s *segment) error {
	before := s.indexer
	entry, ok := s.indexer.seal()
	if !ok {
		return nil
	}
	if err := writeAll(s.timeIndexFile, appendTimeEntry(nil, entry)); err != nil {
		s.indexer = before
		cause := fmt.Errorf("seal time index %d: %w", s.base, err)
		if truncateErr := s.timeIndexFile.Truncate(int64(len(s.times)) * timeEntryBytes); truncateErr != nil {
			return l.fail(fmt.Errorf("%w; undo failed: %w", cause, truncateErr))
		}
		return cause
	}
	l.mu.Lock()
	s.times = append(s.times, entry)
	l.mu.Unlock()
	s.indexUnsynced = true
	return nil
}

// Sync makes every batch appended before the call durable: it fdatasyncs
// each segment written since its last sync, and the directory when entries
// were created, renamed or removed since its last sync. It returns the log
// end offset it covers. It may run concurrently with one mutation (group
// commit). Any failure makes the log failed for good: after a failed fsync
// the kernel may have dropped the dirty pages, so no later sync can be
// trusted to cover them.
func (l *Log) Sync() (syncedNextOffset int64, err error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	type pending struct {
		s          *segment
		generation uint64
	}
	l.mu.Lock()
	if err := l.checkWritableLocked(); err != nil {
		synced := l.syncedNextOffset
		l.mu.Unlock()
		return synced, err
	}
	target, dirGeneration := l.nextOffset, l.dirGeneration
	syncDir := l.dirGeneration > l.dirSyncedGeneration
	var work []pending
	for _, s := range l.segments {
		if s.writeGeneration > s.syncedGeneration {
			s.acquire()
			work = append(work, pending{s, s.writeGeneration})
		}
	}
	synced := l.syncedNextOffset
	l.mu.Unlock()
	defer func() {
		for _, p := range work {
			p.s.release()
		}
	}()
	for _, p := range work {
		if err := p.s.log.Sync(); err != nil {
			return synced, l.fail(fmt.Errorf("sync segment %d: %w", p.s.base, err))
		}
	}
	if syncDir {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return synced, l.fail(fmt.Errorf("sync directory: %w", err))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range work {
		p.s.syncedGeneration = max(p.s.syncedGeneration, p.generation)
	}
	l.dirSyncedGeneration = max(l.dirSyncedGeneration, dirGeneration)
	l.syncedNextOffset = max(l.syncedNextOffset, target)
	return l.syncedNextOffset, nil
}

// Checkpoint syncs the log and its indexes, then records the synced end as
// the recovery point in the state file, so the next Open validates only what
// follows it.
func (l *Log) Checkpoint() error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	if err := l.checkpoint(false, l.StartOffset(), 0); err != nil {
		return fmt.Errorf("checkpoint log %s: %w", l.dir, err)
	}
	return nil
}

// checkpoint makes everything appended durable and writes the state file
// with the given start offset, leaving out the first dropSegments segments.
// It runs as a mutation, so the log end cannot move meanwhile.
func (l *Log) checkpoint(clean bool, startOffset int64, dropSegments int) error {
	if _, err := l.Sync(); err != nil {
		return err
	}
	if err := l.syncIndexFiles(); err != nil {
		return err
	}
	return l.writeState(l.currentState(clean, startOffset, dropSegments))
}

// syncIndexFiles syncs index files with unsynced writes and closes those of
// sealed segments, which will not be written again.
func (l *Log) syncIndexFiles() error {
	l.mu.RLock()
	segments := l.segments
	l.mu.RUnlock()
	for i, s := range segments {
		if !s.indexUnsynced {
			continue
		}
		for _, f := range []vfs.File{s.offsetIndexFile, s.timeIndexFile} {
			if err := f.Sync(); err != nil {
				return l.fail(fmt.Errorf("sync index of segment %d: %w", s.base, err))
			}
		}
		s.indexUnsynced = false
		if i < len(segments)-1 {
			if err := s.closeIndexFiles(); err != nil {
				return fmt.Errorf("close index of segment %d: %w", s.base, err)
			}
		}
	}
	return nil
}

// currentState describes the log as it is now, all of it synced.
func (l *Log) currentState(clean bool, startOffset int64, dropSegments int) logState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	active := l.active()
	st := logState{
		clean:       clean,
		startOffset: startOffset,
		recovery: recoveryPoint{
			nextOffset:         l.nextOffset,
			segmentBase:        active.base,
			positionBytes:      active.sizeBytes,
			offsetIndexEntries: uint32(len(active.offsets)),
			timeIndexEntries:   uint32(len(active.times)),
			maxTimestampMs:     active.indexer.maxTimestampMs,
			maxTimestampOffset: active.indexer.maxTimestampOffset,
		},
	}
	for _, s := range l.segments[dropSegments:] {
		st.segments = append(st.segments, segmentRecord{base: s.base, createdMs: s.createdMs})
	}
	return st
}

// writeState replaces the state file atomically. A failed sync makes the
// log failed; other failures leave the old state file in place.
func (l *Log) writeState(st logState) error {
	name := l.path(stateFileName)
	temp := vfs.TempName(name)
	f, err := l.fs.Create(temp)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	abandon := func(cause error) error {
		_ = f.Close()
		_ = l.fs.Remove(temp) // best effort: recovery removes leftovers
		return cause
	}
	if err := writeAll(f, st.encode()); err != nil {
		return abandon(fmt.Errorf("write state: %w", err))
	}
	if err := f.Sync(); err != nil {
		return abandon(l.fail(fmt.Errorf("sync state: %w", err)))
	}
	if err := f.Close(); err != nil {
		_ = l.fs.Remove(temp)
		return fmt.Errorf("write state: %w", err)
	}
	if err := l.fs.Rename(temp, name); err != nil {
		_ = l.fs.Remove(temp)
		return fmt.Errorf("write state: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("sync directory after state: %w", err))
	}
	l.persistedRecoveryBase = st.recovery.segmentBase
	return nil
}
