package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/cairnlog/cairn/storage/vfs"
)

// Log is one partition's segmented log. See the package documentation for
// which methods may run concurrently.
type Log struct {
	fs  vfs.FS
	dir string
	// syncedTo is OpenSyncedTo's offset, read only by recovery.
	syncedTo int64

	// syncMu serializes Sync calls (a caller's flusher and the one inside
	// Checkpoint). Lock order: syncMu, then mu.
	syncMu sync.Mutex

	// mu guards everything below and the fields of segments marked as such.
	// It is never held across file I/O.
	mu                  sync.RWMutex
	cfg                 Config
	segments            []*segment // oldest first; the last one is active
	startOffset         int64
	nextOffset          int64
	syncedNextOffset    int64
	dirGeneration       uint64 // counts creates, renames and removals in dir
	truncations         uint64 // counts TruncateSuffix calls that cut something
	dirSyncedGeneration uint64
	failure             error // set once; wraps ErrFailed
	closed              bool

	// persistedRecoveryBase is the segment of the recovery point in the state
	// file. Owned by mutations.
	persistedRecoveryBase int64
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	BaseOffset int64
	// NextOffset is the offset after the segment's range: the next segment's
	// base offset, or the log end offset for the active segment.
	NextOffset int64
	SizeBytes  int64
	// MaxTimestampMs is the largest batch MaxTimestamp, -1 when the segment
	// holds no batch.
	MaxTimestampMs int64
	// CreatedMs is the nowMs of the segment's first append, or of its
	// creation while it is empty. It is persisted in the state file at every
	// checkpoint; a segment created after the last checkpoint and found by
	// crash recovery gets the nowMs passed to Open.
	CreatedMs int64
	Active    bool
}

// Open opens the log in dir, creating dir and an empty log when dir holds
// none, and recovers it (see the package documentation). Damage before the
// recovery point is returned as a *CorruptionError.
func Open(fsys vfs.FS, dir string, cfg Config, nowMs int64) (*Log, error) {
	return OpenSyncedTo(fsys, dir, cfg, nowMs, 0)
}

// OpenSyncedTo is Open for a caller that knows the log was synced up to
// offset syncedTo (a replica's record of its last sync, kept apart from the
// segments): recovery then takes a bad batch, a gap or an end below that
// offset for damage, a *CorruptionError, rather than a torn tail to cut,
// and returns that error before it cuts a batch or removes a segment at or
// above the start offset (index files may be rebuilt meanwhile).
func OpenSyncedTo(fsys vfs.FS, dir string, cfg Config, nowMs, syncedTo int64) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l := &Log{fs: fsys, dir: dir, cfg: cfg, syncedTo: syncedTo}
	if err := createDir(fsys, dir); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	if err := l.recover(nowMs); err != nil {
		l.closeFiles()
		var corrupt *CorruptionError
		if errors.As(err, &corrupt) {
			return nil, corrupt
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	return l, nil
}

// createDir creates dir and makes every newly created level durable in its
// parent.
func createDir(fsys vfs.FS, dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		_, err := fsys.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	for _, d := range missing {
		if err := fsys.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// SetConfig applies a changed configuration from the next append on. An
// invalid configuration is refused and the old one stays.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("set config of log %s: %w", l.dir, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("set config of log %s: %w", l.dir, ErrClosed)
	}
	l.cfg = cfg
	return nil
}

// NextOffset returns the log end offset: the offset the next append must
// start at. Batches below it are appended, not necessarily synced.
func (l *Log) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.nextOffset
}

// StartOffset returns the log start offset, the lowest readable offset.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.startOffset
}

// Segments describes the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	infos := make([]SegmentInfo, len(l.segments))
	for i, s := range l.segments {
		maxTimestampMs := s.maxTimestampMs
		if maxTimestampMs == noTimestamp {
			maxTimestampMs = -1
		}
		infos[i] = SegmentInfo{
			BaseOffset:     s.base,
			NextOffset:     s.nextOffset,
			SizeBytes:      s.sizeBytes,
			MaxTimestampMs: maxTimestampMs,
			CreatedMs:      s.createdMs,
			Active:         i == len(l.segments)-1,
		}
	}
	return infos
}

// active returns the active segment; the caller holds mu or runs mutations.
func (l *Log) active() *segment { return l.segments[len(l.segments)-1] }

// checkWritable returns why the log refuses mutations, if it does.
func (l *Log) checkWritable() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.checkWritableLocked()
}

func (l *Log) checkWritableLocked() error {
	if l.closed {
		return fmt.Errorf("log %s: %w", l.dir, ErrClosed)
	}
	return l.failure
}

// fail marks the log failed for good and returns the error to report.
func (l *Log) fail(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure == nil {
		l.failure = fmt.Errorf("log %s: %w: %w", l.dir, ErrFailed, cause)
	}
	return l.failure
}

// closeFiles retires every segment and closes index files, collecting errors.
func (l *Log) closeFiles() error {
	l.mu.Lock()
	segments := l.segments
	l.segments = nil
	l.closed = true
	l.mu.Unlock()
	var errs []error
	for _, s := range segments {
		errs = append(errs, s.closeIndexFiles(), s.retire())
	}
	return errors.Join(errs...)
}
