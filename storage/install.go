package storage

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// InstallBelow puts data below an empty log: the log, empty at N (its
// start and next offset, as Reset leaves it), gets sealed segments holding
// the batches next yields in [start, N), and starts at start. next returns
// successive pieces of whole batches in increasing offset order, io.EOF
// after the last; gaps between batches are allowed (a compacted log's
// copy), overlaps and batches ending past N are ErrInvalidBatches. The
// first batch may begin below start when it holds start (a log whose
// DeleteRecords moved its start inside a batch): the first segment then
// begins with it, and the log starts inside it, as the copied log did. A Raft
// follower installing a snapshot puts the data it copied below the
// snapshot's next offset this way. It is a mutation.
//
// Crash safety: the segments are written and synced under their final
// names, below the start the state file names, where recovery removes
// them; the state file naming them and the new start is the commit point.
// A crash before it leaves the empty log, after it the new one.
func (l *Log) InstallBelow(start int64, next func() ([]byte, error), nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.RLock()
	end, first, cfg := l.nextOffset, l.startOffset, l.cfg
	l.mu.RUnlock()
	if first != end || start < 0 || start > end {
		return fmt.Errorf("install [%d, %d) below log %s holding [%d, %d): %w", start, end, l.dir, first, end, ErrOffsetOutOfRange)
	}
	b := &installBuilder{l: l, cfg: cfg, end: end, start: start, expected: start, nowMs: nowMs}
	segments, err := b.build(start, next)
	if err != nil {
		return fmt.Errorf("install [%d, %d) below log %s: %w", start, end, l.dir, err)
	}
	if err := l.commitInstall(start, segments); err != nil {
		return fmt.Errorf("install [%d, %d) below log %s: %w", start, end, l.dir, err)
	}
	return nil
}

// installBuilder writes the sealed segments of an install one after the
// other, rolling as Append would at the segment size.
type installBuilder struct {
	l        *Log
	cfg      Config
	end      int64 // the log's offset: the last segment ends there
	start    int64 // the log start offset installed
	expected int64 // the next batch starts at or after it
	nowMs    int64
	done     []*segment
	cur      *segment
	built    builtIndexes
}

// build writes every piece and seals the segments; on failure the files
// written stay below the start, for recovery or a later install to remove.
func (b *installBuilder) build(start int64, next func() ([]byte, error)) ([]*segment, error) {
	for range math.MaxInt32 {
		piece, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, b.abandon(err)
		}
		if err := b.add(piece); err != nil {
			return nil, b.abandon(err)
		}
	}
	if b.cur == nil { // nothing below the log's end: one empty segment at start
		if err := b.open(start); err != nil {
			return nil, err
		}
	}
	if err := b.seal(b.end); err != nil {
		return nil, b.abandon(err)
	}
	if err := b.l.fs.SyncDir(b.l.dir); err != nil {
		return nil, b.abandon(fmt.Errorf("sync directory: %w", err))
	}
	return b.done, nil
}

// abandon closes the segments written so far and returns cause.
func (b *installBuilder) abandon(cause error) error {
	for _, s := range append(b.done, b.cur) { // b.cur is nil before the first batch
		if s != nil {
			_ = s.log.Close()
		}
	}
	return cause
}

// add writes the batches of one piece, rolling before a batch that would
// take the segment past its size or its 32-bit offset span (a segment
// left empty by a long gap stays, sealed: the first is always at start,
// or at the batch holding start).
func (b *installBuilder) add(piece []byte) error {
	for rest := piece; len(rest) > 0; {
		h, whole, remaining, err := batch.Next(rest)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidBatches, err)
		}
		if b.cur == nil {
			base := b.start
			if h.BaseOffset < b.start && h.LastOffset() >= b.start {
				base = h.BaseOffset
			}
			if err := b.open(base); err != nil {
				return err
			}
			b.expected = base
		}
		if h.BaseOffset < b.expected || h.LastOffsetDelta < 0 || h.NextOffset() > b.end {
			return fmt.Errorf("batch [%d, %d) not within [%d, %d): %w", h.BaseOffset, h.NextOffset(), b.expected, b.end, ErrInvalidBatches)
		}
		size := b.cur.sizeBytes
		if (size > 0 && size+int64(len(whole)) > b.cfg.SegmentBytes) || h.LastOffset()-b.cur.base > math.MaxUint32 {
			if err := b.seal(h.BaseOffset); err != nil {
				return err
			}
			if err := b.open(h.BaseOffset); err != nil {
				return err
			}
		}
		if err := writeAll(b.cur.log, whole); err != nil {
			return fmt.Errorf("write segment %d: %w", b.cur.base, err)
		}
		b.built.add(h, b.cur.sizeBytes)
		b.cur.sizeBytes += int64(len(whole))
		b.expected, rest = h.NextOffset(), remaining
	}
	return nil
}

// open creates the segment at base.
func (b *installBuilder) open(base int64) error {
	f, err := b.l.fs.Create(b.l.segmentPath(base, logSuffix))
	if err != nil {
		return fmt.Errorf("create segment %d: %w", base, err)
	}
	b.cur = newSegment(base, f, b.nowMs)
	b.built = builtIndexes{indexer: newIndexer(base, b.cfg.IndexIntervalBytes)}
	return nil
}

// seal ends the current segment at next: its data and index files synced,
// its file reopened for reading.
func (b *installBuilder) seal(next int64) error {
	s := b.cur
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("sync segment %d: %w", s.base, err)
	}
	if err := s.log.Close(); err != nil {
		return fmt.Errorf("close segment %d: %w", s.base, err)
	}
	b.built.seal()
	s.nextOffset = next
	s.offsets, s.times, s.indexesLoaded = b.built.offsets, b.built.times, true
	s.maxTimestampMs, s.maxTimestampOffset = b.built.indexer.maxTimestampMs, b.built.indexer.maxTimestampOffset
	offsetBytes, timeBytes := encodeIndexes(s.offsets, s.times)
	for _, file := range []struct {
		suffix string
		data   []byte
	}{{offsetIndexSuffix, offsetBytes}, {timeIndexSuffix, timeBytes}} {
		if err := writeSynced(b.l.fs, b.l.segmentPath(s.base, file.suffix), file.data); err != nil {
			return fmt.Errorf("index segment %d: %w", s.base, err)
		}
	}
	f, err := b.l.fs.Open(b.l.segmentPath(s.base, logSuffix))
	if err != nil {
		return fmt.Errorf("reopen segment %d: %w", s.base, err)
	}
	s.log = f
	b.done, b.cur = append(b.done, s), nil
	return nil
}

// writeSynced creates name holding data, synced.
func writeSynced(fsys vfs.FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	err = writeAll(f, data)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// commitInstall writes the state file naming the installed segments
// before the empty active one, then publishes them.
func (l *Log) commitInstall(start int64, installed []*segment) error {
	st := l.currentState(false, start, 0)
	records := make([]segmentRecord, 0, len(installed)+len(st.segments))
	for _, s := range installed {
		records = append(records, segmentRecord{base: s.base, createdMs: s.createdMs})
	}
	st.segments = append(records, st.segments...)
	if err := l.writeState(st); err != nil {
		for _, s := range installed {
			_ = s.log.Close()
		}
		return err
	}
	l.mu.Lock()
	l.segments = append(installed, l.segments...)
	l.startOffset = start
	l.dirGeneration++
	l.mu.Unlock()
	return nil
}
