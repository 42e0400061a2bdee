package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cairnlog/cairn/storage/vfs"
)

// segment is one .log file with its two indexes.
//
// Lifetime: the Log holds one reference from creation until the segment is
// deleted, replaced or the log closes (retire); readers and Sync take a
// reference while they use the file (acquire, under Log.mu). The file closes
// when the last reference goes, so a read racing a deletion never sees a
// closed file.
type segment struct {
	base    int64
	log     vfs.File
	refs    atomic.Int64
	retired atomic.Bool   // no longer in the log's list
	drained chan struct{} // closed with the file, when the last reference goes

	// Guarded by Log.mu: written under the write lock, read under either.
	sizeBytes          int64 // bytes of whole, published batches; readers never go past
	nextOffset         int64
	createdMs          int64
	maxTimestampMs     int64 // noTimestamp when the segment has no batch
	maxTimestampOffset int64
	offsets            []offsetEntry
	times              []timeEntry
	indexesLoaded      bool // sealed segments load their indexes on first use
	writeGeneration    uint64
	syncedGeneration   uint64

	// Owned by the goroutine running mutations: the active segment, and
	// sealed segments whose index writes wait for the next checkpoint.
	indexer         indexer
	offsetIndexFile vfs.File
	timeIndexFile   vfs.File
	indexUnsynced   bool
	// writebackFrom is where the next writeback hint starts: the end of
	// the whole pages already asked for (startWriteback).
	writebackFrom int64

	loadMu sync.Mutex // one lazy index load at a time
}

func newSegment(base int64, log vfs.File, createdMs int64) *segment {
	s := &segment{base: base, log: log, nextOffset: base, createdMs: createdMs,
		maxTimestampMs: noTimestamp, maxTimestampOffset: -1, drained: make(chan struct{})}
	s.refs.Store(1)
	return s
}

// acquire takes a reference; the caller holds Log.mu and found s in the list.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes the file after the last one. Closing
// a file whose content is already synced, or deliberately abandoned, cannot
// lose data, so the close error of a late reader has nowhere useful to go.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		_ = s.log.Close()
		close(s.drained)
	}
}

// retire drops the log's own reference; the caller removed s from the list.
// It returns the close error when no reader held the file.
func (s *segment) retire() error {
	s.retired.Store(true)
	if s.refs.Add(-1) == 0 {
		err := s.log.Close()
		close(s.drained)
		return err
	}
	return nil
}

// closeIndexFiles closes the index file handles, if open.
func (s *segment) closeIndexFiles() error {
	var errs []error
	for _, f := range []*vfs.File{&s.offsetIndexFile, &s.timeIndexFile} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	return errors.Join(errs...)
}

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

func (l *Log) segmentPath(base int64, suffix string) string {
	return l.path(segmentFileName(base, suffix))
}

// createSegment creates the three files of a new, empty segment.
func (l *Log) createSegment(base, createdMs int64) (*segment, error) {
	var files [3]vfs.File
	for i, suffix := range []string{logSuffix, offsetIndexSuffix, timeIndexSuffix} {
		f, err := l.fs.Create(l.segmentPath(base, suffix))
		if err != nil {
			l.abandonFiles(base, files[:i])
			return nil, fmt.Errorf("create segment %d: %w", base, err)
		}
		files[i] = f
	}
	s := newSegment(base, files[0], createdMs)
	s.offsetIndexFile, s.timeIndexFile = files[1], files[2]
	s.indexesLoaded = true
	s.indexer = newIndexer(base, l.intervalBytes())
	return s, nil
}

// abandonFiles closes and removes the files of a segment that failed to
// come into existence. The removals are best effort: recovery removes
// segment files above the log end anyway.
func (l *Log) abandonFiles(base int64, files []vfs.File) {
	suffixes := []string{logSuffix, offsetIndexSuffix, timeIndexSuffix}
	for i, f := range files {
		_ = f.Close()
		_ = l.fs.Remove(l.segmentPath(base, suffixes[i]))
	}
}

// removeSegmentFiles removes the files of a segment; missing files are fine.
func (l *Log) removeSegmentFiles(base int64) error {
	var errs []error
	for _, suffix := range []string{logSuffix, offsetIndexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(l.segmentPath(base, suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove segment %d: %w", base, err)
	}
	return nil
}

// loadIndexes makes sure a sealed segment's indexes are in memory. An index
// file that is missing or invalid is rebuilt in memory from the .log file:
// indexes are derived data.
func (l *Log) loadIndexes(s *segment) error {
	l.mu.RLock()
	loaded := s.indexesLoaded
	l.mu.RUnlock()
	if loaded {
		return nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	l.mu.RLock()
	loaded, size, next := s.indexesLoaded, s.sizeBytes, s.nextOffset
	l.mu.RUnlock()
	if loaded {
		return nil
	}
	offsets, times, err := l.readIndexFiles(s.base)
	if err != nil {
		if s.retired.Load() && errors.Is(err, fs.ErrNotExist) {
			// Deleted while this reader held it; rebuilding is not worth it.
			return fmt.Errorf("segment %d was deleted: %w", s.base, ErrOffsetOutOfRange)
		}
		if isReadFailure(err) {
			return err
		}
		built, buildErr := l.buildIndexes(s, size, next)
		if buildErr != nil {
			return buildErr
		}
		offsets, times = built.offsets, built.times
	}
	l.mu.Lock()
	s.offsets, s.times, s.indexesLoaded = offsets, times, true
	l.mu.Unlock()
	return nil
}

// isReadFailure tells an I/O failure from an index that is missing or invalid.
func isReadFailure(err error) bool {
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errIndexInvalid)
}

// readIndexFiles reads and checks both index files of a segment.
func (l *Log) readIndexFiles(base int64) ([]offsetEntry, []timeEntry, error) {
	return l.readIndexPrefixes(base, -1, -1)
}

// readIndexPrefixes reads and checks the first offsetEntries and
// timeEntries entries of a segment's index files (-1: all of them). What
// follows them is not looked at: after a crash it may be a torn write.
func (l *Log) readIndexPrefixes(base int64, offsetEntries, timeEntries int) ([]offsetEntry, []timeEntry, error) {
	data, err := vfs.ReadFile(l.fs, l.segmentPath(base, offsetIndexSuffix))
	if err != nil {
		return nil, nil, fmt.Errorf("read offset index %d: %w", base, err)
	}
	offsets, err := decodeOffsetIndex(entryPrefix(data, offsetEntries, offsetEntryBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("segment %d: %w", base, err)
	}
	data, err = vfs.ReadFile(l.fs, l.segmentPath(base, timeIndexSuffix))
	if err != nil {
		return nil, nil, fmt.Errorf("read time index %d: %w", base, err)
	}
	times, err := decodeTimeIndex(entryPrefix(data, timeEntries, timeEntryBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("segment %d: %w", base, err)
	}
	return offsets, times, nil
}

// entryPrefix returns the first entries entries of data (all of it when
// entries is -1 or data is shorter).
func entryPrefix(data []byte, entries, entryBytes int) []byte {
	if entries >= 0 && len(data) > entries*entryBytes {
		return data[:entries*entryBytes]
	}
	return data
}

// builtIndexes is the result of scanning a whole sealed segment.
type builtIndexes struct {
	offsets []offsetEntry
	times   []timeEntry
	indexer indexer
}

// buildIndexes scans a sealed segment's first sizeBytes and returns its
// indexes, sealed. Batches must not overlap and must lie in [base, next):
// compaction leaves gaps, never disorder.
func (l *Log) buildIndexes(s *segment, sizeBytes, next int64) (builtIndexes, error) {
	built := builtIndexes{indexer: newIndexer(s.base, l.intervalBytes())}
	scan := newScanner(s.log, 0, sizeBytes, true, recoveryWindowBytes)
	expected := s.base
	for {
		h, _, position, err := scan.next()
		if err != nil && !isInvalidBatch(err) {
			if isEOF(err) {
				break
			}
			return builtIndexes{}, fmt.Errorf("index segment %d: %w", s.base, err)
		}
		if err == nil && (h.BaseOffset < expected || h.LastOffsetDelta < 0 || h.NextOffset() > next) {
			err = fmt.Errorf("batch at position %d has offsets [%d, %d), want within [%d, %d)",
				position, h.BaseOffset, h.NextOffset(), expected, next)
		}
		if err != nil {
			return builtIndexes{}, corruption(l.dir, "sealed segment %d: %v", s.base, err)
		}
		expected = h.NextOffset()
		built.add(h, position)
	}
	built.seal()
	return built, nil
}

func (l *Log) intervalBytes() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg.IndexIntervalBytes
}
