package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// inventory is what a partition directory holds.
type inventory struct {
	hasState bool
	segments map[int64]segmentFiles
	bases    []int64 // sorted bases of every segment with any file
}

type segmentFiles struct{ log, offsetIndex, timeIndex bool }

// recover brings the log from its files to a consistent, durable state: see
// "Recovery" in the package documentation.
func (l *Log) recover(nowMs int64) error {
	inv, err := l.takeInventory()
	if err != nil {
		return err
	}
	if !inv.hasState {
		if len(inv.bases) > 0 {
			return corruption(l.dir, "state file missing but %d segments present", len(inv.bases))
		}
		return l.initialize(nowMs)
	}
	data, err := vfs.ReadFile(l.fs, l.path(stateFileName))
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	st, err := decodeState(data)
	if err != nil {
		return corruption(l.dir, "state file: %v", err)
	}
	if err := l.removeBelowStart(st, &inv); err != nil {
		return err
	}
	for i, record := range st.segments[:len(st.segments)-1] {
		if err := l.openSealed(record, st.segments[i+1].base, inv.segments[record.base]); err != nil {
			return err
		}
	}
	if err := l.recoverTail(st, inv, nowMs); err != nil {
		return err
	}
	l.startOffset = st.startOffset
	// Entries found in the directory may not be durable in it yet (a process
	// crash leaves them in the page cache), nor may the bytes scanned.
	l.dirGeneration++
	return l.checkpoint(false, l.startOffset, 0)
}

// takeInventory lists the directory and removes files that only an
// interrupted operation leaves behind.
func (l *Log) takeInventory() (inventory, error) {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return inventory{}, fmt.Errorf("list: %w", err)
	}
	inv := inventory{segments: map[int64]segmentFiles{}}
	for _, name := range names {
		if name == stateFileName {
			inv.hasState = true
			continue
		}
		if isLeftover(name) {
			if err := l.fs.Remove(l.path(name)); err != nil {
				return inventory{}, fmt.Errorf("remove leftover %s: %w", name, err)
			}
			l.dirGeneration++
			continue
		}
		base, suffix, ok := parseSegmentFileName(name)
		if !ok {
			continue // not ours; leave it alone
		}
		files, seen := inv.segments[base]
		if !seen {
			inv.bases = append(inv.bases, base)
		}
		switch suffix {
		case logSuffix:
			files.log = true
		case offsetIndexSuffix:
			files.offsetIndex = true
		case timeIndexSuffix:
			files.timeIndex = true
		}
		inv.segments[base] = files
	}
	slices.Sort(inv.bases)
	return inv, nil
}

// initialize creates an empty log. The state file comes first, so a
// directory with segments but no state file is never our own doing.
func (l *Log) initialize(nowMs int64) error {
	st := logState{
		recovery: recoveryPoint{maxTimestampMs: noTimestamp, maxTimestampOffset: -1},
		segments: []segmentRecord{{base: 0, createdMs: nowMs}},
	}
	if err := l.writeState(st); err != nil {
		return err
	}
	s, err := l.createSegment(0, nowMs)
	if err != nil {
		return err
	}
	l.segments = []*segment{s}
	l.dirGeneration++
	return l.checkpoint(false, 0, 0)
}

// removeBelowStart removes segments a retention deletion had already
// dropped from the state file, and rejects segments the state file should
// know but does not.
func (l *Log) removeBelowStart(st logState, inv *inventory) error {
	listed := map[int64]bool{}
	for _, record := range st.segments {
		listed[record.base] = true
	}
	kept := inv.bases[:0]
	for _, base := range inv.bases {
		switch {
		case base < st.segments[0].base:
			if err := l.removeSegmentFiles(base); err != nil {
				return err
			}
			l.dirGeneration++
		case base < st.recovery.segmentBase && !listed[base]:
			return corruption(l.dir, "segment %d is not in the state file", base)
		default:
			kept = append(kept, base)
		}
	}
	inv.bases = kept
	return nil
}

// openSealed opens a segment wholly before the recovery point: its data and
// indexes were synced, so it is trusted and only its index tails are read.
func (l *Log) openSealed(record segmentRecord, next int64, files segmentFiles) error {
	if !files.log {
		return corruption(l.dir, "segment %d before the recovery point is missing", record.base)
	}
	f, err := l.fs.Open(l.segmentPath(record.base, logSuffix))
	if err != nil {
		return fmt.Errorf("open segment %d: %w", record.base, err)
	}
	s := newSegment(record.base, f, record.createdMs)
	l.segments = append(l.segments, s)
	if s.sizeBytes, err = f.Size(); err != nil {
		return fmt.Errorf("size of segment %d: %w", record.base, err)
	}
	s.nextOffset = next
	if files.offsetIndex && files.timeIndex {
		usable, err := l.readIndexTails(s)
		if err != nil || usable {
			return err
		}
	}
	built, err := l.buildIndexes(s, s.sizeBytes, next)
	if err != nil {
		return err
	}
	s.offsets, s.times, s.indexesLoaded = built.offsets, built.times, true
	s.maxTimestampMs, s.maxTimestampOffset = built.indexer.maxTimestampMs, built.indexer.maxTimestampOffset
	return l.rewriteIndexFiles(s)
}

// readIndexTails reads the last entry of each index of a sealed segment:
// the time index's is the segment's largest timestamp, the offset index's
// must point inside the .log file. usable is false when an index must be
// rebuilt.
func (l *Log) readIndexTails(s *segment) (usable bool, err error) {
	offsetTail, ok, err := l.readTail(l.segmentPath(s.base, offsetIndexSuffix), offsetEntryBytes)
	if err != nil || !ok {
		return false, err
	}
	timeTail, ok, err := l.readTail(l.segmentPath(s.base, timeIndexSuffix), timeEntryBytes)
	if err != nil || !ok {
		return false, err
	}
	span := s.nextOffset - s.base
	if offsetTail != nil {
		entries, _ := decodeOffsetIndex(offsetTail)
		if position := int64(entries[0].position); position >= s.sizeBytes {
			return false, corruption(l.dir, "sealed segment %d is %d bytes but its index points at position %d",
				s.base, s.sizeBytes, position)
		}
		if int64(entries[0].relativeOffset) >= span {
			return false, nil
		}
	}
	if timeTail == nil {
		return s.sizeBytes == 0, nil // a segment with batches has time entries
	}
	last := decodeTimeEntry(timeTail)
	if int64(last.relativeOffset) >= span {
		return false, nil
	}
	s.maxTimestampMs, s.maxTimestampOffset = last.timestampMs, s.base+int64(last.relativeOffset)
	return true, nil
}

// readTail returns the last entryBytes of an index file, nil for an empty
// file; ok is false when the file cannot be an index.
func (l *Log) readTail(name string, entryBytes int64) (tail []byte, ok bool, err error) {
	f, err := l.fs.Open(name)
	if err != nil {
		return nil, false, fmt.Errorf("open index: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, false, fmt.Errorf("size of index %s: %w", name, err)
	}
	if size%entryBytes != 0 {
		return nil, false, nil
	}
	if size == 0 {
		return nil, true, nil
	}
	tail = make([]byte, entryBytes)
	if _, err := f.ReadAt(tail, size-entryBytes); err != nil {
		return nil, false, fmt.Errorf("read index %s: %w", name, err)
	}
	return tail, true, nil
}

// rewriteIndexFiles replaces both index files of a segment with its
// in-memory entries; the next checkpoint syncs them.
func (l *Log) rewriteIndexFiles(s *segment) error {
	offsetBytes, timeBytes := encodeIndexes(s.offsets, s.times)
	for _, file := range []struct {
		suffix string
		data   []byte
		handle *vfs.File
	}{{offsetIndexSuffix, offsetBytes, &s.offsetIndexFile}, {timeIndexSuffix, timeBytes, &s.timeIndexFile}} {
		f, err := l.fs.Create(l.segmentPath(s.base, file.suffix))
		if err != nil {
			return fmt.Errorf("rewrite index of segment %d: %w", s.base, err)
		}
		*file.handle = f
		if err := writeAll(f, file.data); err != nil {
			return fmt.Errorf("rewrite index of segment %d: %w", s.base, err)
		}
	}
	s.indexUnsynced = true
	l.dirGeneration++
	return nil
}

// recoverTail opens the segment of the recovery point and every later one,
// validating batches from the recovery point on and truncating at the first
// invalid one.
func (l *Log) recoverTail(st logState, inv inventory, nowMs int64) error {
	record := st.segments[len(st.segments)-1]
	s, from, err := l.openRecoverySegment(record, st.recovery, inv.segments[record.base])
	if err != nil {
		return err
	}
	next, stopped, err := l.scanTail(s, from, st.recovery.positionBytes)
	if err != nil {
		return err
	}
	for _, base := range inv.bases {
		if base <= record.base {
			continue
		}
		if stopped || base != next || !inv.segments[base].log {
			if next < l.syncedTo {
				return corruption(l.dir, "segment %d is missing or follows a gap after offset %d, below offset %d, which the log was synced up to",
					base, next, l.syncedTo)
			}
			if err := l.removeSegmentFiles(base); err != nil {
				return err
			}
			stopped = true
			continue
		}
		if err := l.sealTimeIndex(s); err != nil {
			return err
		}
		if s, err = l.openLaterSegment(base, nowMs); err != nil {
			return err
		}
		if next, stopped, err = l.scanTail(s, 0, 0); err != nil {
			return err
		}
	}
	if next < st.recovery.nextOffset {
		return corruption(l.dir, "log ends at offset %d, before the recovery point at %d", next, st.recovery.nextOffset)
	}
	if next < l.syncedTo {
		return corruption(l.dir, "log ends at offset %d, below offset %d, which it was synced up to", next, l.syncedTo)
	}
	l.nextOffset = next
	return nil
}

// openRecoverySegment opens the segment holding the recovery point and its
// indexes cut back to the entries the recovery point counts. from is where
// validation starts: the recovery point, or 0 when the indexes must be
// rebuilt.
func (l *Log) openRecoverySegment(record segmentRecord, r recoveryPoint, files segmentFiles) (*segment, int64, error) {
	if !files.log {
		if r.positionBytes != 0 {
			return nil, 0, corruption(l.dir, "segment %d holding the recovery point (position %d) is missing",
				record.base, r.positionBytes)
		}
		s, err := l.createSegment(record.base, record.createdMs)
		if err != nil {
			return nil, 0, err
		}
		l.segments = append(l.segments, s)
		return s, 0, nil
	}
	f, err := l.fs.OpenAppend(l.segmentPath(record.base, logSuffix))
	if err != nil {
		return nil, 0, fmt.Errorf("open segment %d: %w", record.base, err)
	}
	s := newSegment(record.base, f, record.createdMs)
	l.segments = append(l.segments, s)
	size, err := f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("size of segment %d: %w", record.base, err)
	}
	if size < r.positionBytes {
		return nil, 0, corruption(l.dir, "segment %d is %d bytes, shorter than the recovery point at position %d",
			record.base, size, r.positionBytes)
	}
	s.indexer = newIndexer(s.base, l.cfg.IndexIntervalBytes)
	s.indexesLoaded = true
	offsets, times, usable, err := l.recoveryIndexes(s.base, r)
	if err != nil {
		return nil, 0, err
	}
	if usable {
		s.offsets, s.times = offsets, times
		s.indexer = resumeIndexer(s.base, l.cfg.IndexIntervalBytes, offsets, times, r.maxTimestampMs, r.maxTimestampOffset)
		s.sizeBytes, s.nextOffset = r.positionBytes, r.nextOffset
		s.maxTimestampMs, s.maxTimestampOffset = r.maxTimestampMs, r.maxTimestampOffset
	}
	if err := l.openIndexFilesForAppend(s); err != nil {
		return nil, 0, err
	}
	if usable {
		return s, r.positionBytes, nil
	}
	return s, 0, nil
}

// recoveryIndexes reads the indexes of the recovery segment and keeps the
// entries the recovery point counts. usable is false when fewer exist or they
// do not fit the recovery point: they are derived data, rebuilt by scanning.
func (l *Log) recoveryIndexes(base int64, r recoveryPoint) ([]offsetEntry, []timeEntry, bool, error) {
	offsets, times, err := l.readIndexPrefixes(base, int(r.offsetIndexEntries), int(r.timeIndexEntries))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errIndexInvalid) {
			return nil, nil, false, nil
		}
		return nil, nil, false, err
	}
	if len(offsets) < int(r.offsetIndexEntries) || len(times) < int(r.timeIndexEntries) {
		return nil, nil, false, nil
	}
	offsets, times = offsets[:r.offsetIndexEntries], times[:r.timeIndexEntries]
	span := r.nextOffset - base
	if len(offsets) > 0 {
		if last := offsets[len(offsets)-1]; int64(last.position) >= r.positionBytes || int64(last.relativeOffset) >= span {
			return nil, nil, false, nil
		}
	}
	if len(times) > 0 {
		if last := times[len(times)-1]; int64(last.relativeOffset) >= span || last.timestampMs > r.maxTimestampMs {
			return nil, nil, false, nil
		}
	}
	return offsets, times, true, nil
}

// openIndexFilesForAppend opens (or creates) a segment's index files and
// cuts them to its in-memory entries.
func (l *Log) openIndexFilesForAppend(s *segment) error {
	for _, file := range []struct {
		suffix    string
		sizeBytes int64
		handle    *vfs.File
	}{
		{offsetIndexSuffix, int64(len(s.offsets)) * offsetEntryBytes, &s.offsetIndexFile},
		{timeIndexSuffix, int64(len(s.times)) * timeEntryBytes, &s.timeIndexFile},
	} {
		name := l.segmentPath(s.base, file.suffix)
		f, err := l.fs.OpenAppend(name)
		if errors.Is(err, fs.ErrNotExist) {
			f, err = l.fs.Create(name)
			l.dirGeneration++
		}
		if err != nil {
			return fmt.Errorf("open index of segment %d: %w", s.base, err)
		}
		*file.handle = f
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("size of index of segment %d: %w", s.base, err)
		}
		if size != file.sizeBytes {
			if err := f.Truncate(file.sizeBytes); err != nil {
				return fmt.Errorf("truncate index of segment %d: %w", s.base, err)
			}
			s.indexUnsynced = true
		}
	}
	return nil
}

// openLaterSegment opens a segment created after the recovery point; its
// indexes are rebuilt from scratch.
func (l *Log) openLaterSegment(base, nowMs int64) (*segment, error) {
	f, err := l.fs.OpenAppend(l.segmentPath(base, logSuffix))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	s := newSegment(base, f, nowMs)
	l.segments = append(l.segments, s)
	s.indexer = newIndexer(base, l.cfg.IndexIntervalBytes)
	s.indexesLoaded = true
	if err := l.openIndexFilesForAppend(s); err != nil {
		return nil, err
	}
	return s, nil
}

// scanTail validates the batches of s from position from on, indexing each,
// and truncates the file at the first invalid one. Batches before
// protectedUntil were synced before the recovery point: if one is invalid the
// log is corrupt. stopped reports that the segment was cut short, so no
// later segment can follow it.
func (l *Log) scanTail(s *segment, from, protectedUntil int64) (next int64, stopped bool, err error) {
	size, err := s.log.Size()
	if err != nil {
		return 0, false, fmt.Errorf("size of segment %d: %w", s.base, err)
	}
	scan := newScanner(s.log, from, size, true, recoveryWindowBytes)
	var offsetBytes, timeBytes []byte
	for {
		h, _, position, err := scan.next()
		if isEOF(err) {
			break
		}
		if err != nil && !isInvalidBatch(err) {
			return 0, false, fmt.Errorf("recover segment %d: %w", s.base, err)
		}
		if err == nil {
			err = checkAppended(h, s.nextOffset, s.base, position)
		}
		if err != nil {
			if position < protectedUntil {
				return 0, false, corruption(l.dir, "segment %d before the recovery point: %v", s.base, err)
			}
			if s.nextOffset < l.syncedTo {
				return 0, false, corruption(l.dir, "segment %d at offset %d, below offset %d, which the log was synced up to: %v",
					s.base, s.nextOffset, l.syncedTo, err)
			}
			break
		}
		offset, time := s.indexer.add(h, position)
		if offset != nil {
			s.offsets, offsetBytes = append(s.offsets, *offset), appendOffsetEntry(offsetBytes, *offset)
		}
		if time != nil {
			s.times, timeBytes = append(s.times, *time), appendTimeEntry(timeBytes, *time)
		}
		s.sizeBytes, s.nextOffset = position+int64(h.TotalBytes()), h.NextOffset()
	}
	s.maxTimestampMs, s.maxTimestampOffset = s.indexer.maxTimestampMs, s.indexer.maxTimestampOffset
	if s.sizeBytes < protectedUntil {
		return 0, false, corruption(l.dir, "segment %d ends at position %d, before the recovery point at %d",
			s.base, s.sizeBytes, protectedUntil)
	}
	if err := l.finishScan(s, from, size, offsetBytes, timeBytes); err != nil {
		return 0, false, err
	}
	return s.nextOffset, s.sizeBytes < size, nil
}

// finishScan truncates what follows the last valid batch and writes the
// index entries found for the bytes scanned from position from.
func (l *Log) finishScan(s *segment, from, size int64, offsetBytes, timeBytes []byte) error {
	if s.sizeBytes < size {
		if err := s.log.Truncate(s.sizeBytes); err != nil {
			return fmt.Errorf("truncate segment %d at %d: %w", s.base, s.sizeBytes, err)
		}
	}
	if err := writeAll(s.offsetIndexFile, offsetBytes); err != nil {
		return fmt.Errorf("index segment %d: %w", s.base, err)
	}
	if err := writeAll(s.timeIndexFile, timeBytes); err != nil {
		return fmt.Errorf("index segment %d: %w", s.base, err)
	}
	if size > from {
		// Bytes past the recovery point may be only in the page cache, and a
		// truncation is not durable until synced.
		s.writeGeneration++
	}
	s.indexUnsynced = s.indexUnsynced || len(offsetBytes)+len(timeBytes) > 0
	return nil
}

// checkAppended checks what appending guarantees for a batch at position:
// it continues at the expected offset and fits the 32-bit index fields.
func checkAppended(h batch.Header, expected, base, position int64) error {
	switch {
	case h.BaseOffset != expected:
		return fmt.Errorf("batch at position %d has base offset %d, want %d", position, h.BaseOffset, expected)
	case h.LastOffsetDelta < 0:
		return fmt.Errorf("batch at position %d has last offset delta %d", position, h.LastOffsetDelta)
	case h.LastOffset()-base > math.MaxUint32 || position+int64(h.TotalBytes()) > math.MaxUint32:
		return fmt.Errorf("batch at position %d does not fit the segment's 32-bit index fields", position)
	}
	return nil
}

// writeAll writes data, turning a short write into an error.
func writeAll(f vfs.File, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	n, err := f.Write(data)
	if err == nil && n != len(data) {
		err = fmt.Errorf("wrote %d of %d bytes", n, len(data))
	}
	return err
}
