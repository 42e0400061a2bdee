package storage

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// segmentView is a segment with a reference held and its extent as it was
// when the reference was taken.
type segmentView struct {
	s              *segment
	sizeBytes      int64
	nextOffset     int64
	maxTimestampMs int64
}

type views []segmentView

func (v views) release() {
	for _, view := range v {
		view.s.release()
	}
}

// acquireFrom takes references on the segment holding offset and later ones,
// at most segmentsMax in all. It checks offset against [StartOffset,
// NextOffset]. truncations is the count of suffix truncations so far, set
// on error too, so a read spanning segments can tell whether the log was cut
// between them.
func (l *Log) acquireFrom(offset int64, segmentsMax int) (v views, truncations uint64, nextOffset int64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, l.truncations, 0, fmt.Errorf("log %s: %w", l.dir, ErrClosed)
	}
	if offset < l.startOffset || offset > l.nextOffset {
		return nil, l.truncations, 0, fmt.Errorf("offset %d outside [%d, %d] in log %s: %w",
			offset, l.startOffset, l.nextOffset, l.dir, ErrOffsetOutOfRange)
	}
	first := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].base > offset }) - 1
	for _, s := range l.segments[max(first, 0):] {
		if len(v) == segmentsMax {
			break
		}
		s.acquire()
		v = append(v, segmentView{s: s, sizeBytes: s.sizeBytes, nextOffset: s.nextOffset, maxTimestampMs: s.maxTimestampMs})
	}
	return v, l.truncations, l.nextOffset, nil
}

// acquireAll takes references on every segment.
func (l *Log) acquireAll() (v views, startOffset int64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, 0, fmt.Errorf("log %s: %w", l.dir, ErrClosed)
	}
	for _, s := range l.segments {
		s.acquire()
		v = append(v, segmentView{s: s, sizeBytes: s.sizeBytes, nextOffset: s.nextOffset, maxTimestampMs: s.maxTimestampMs})
	}
	return v, l.startOffset, nil
}

// Read returns whole batches as stored, starting with the batch holding
// offset (or, where compaction removed it, the first batch after it). It
// returns only batches whose base offset is below maxOffset, and adds batches
// while the total stays within maxBytes, except that the first batch is
// always returned whole. offset == maxOffset and offset == NextOffset give an
// empty result; offset outside [StartOffset, NextOffset] gives
// ErrOffsetOutOfRange. It scans at most about one index interval to find the
// first batch, and is safe concurrently with everything.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	out, err := l.ReadAppend(nil, offset, maxBytes, maxOffset)
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

// ReadAppend is Read appending to dst, which it returns extended by the
// batches read (as append does, reusing dst's spare capacity), so callers
// can read into buffers they reuse. On error it returns dst unchanged.
func (l *Log) ReadAppend(dst []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	for range readAttemptsMax {
		out, err := l.readOnce(dst, offset, maxBytes, maxOffset)
		if !errors.Is(err, errCutDuringRead) {
			return out, err
		}
	}
	return dst, fmt.Errorf("read log %s at offset %d: the log was cut during %d attempts: %w",
		l.dir, offset, readAttemptsMax, ErrOffsetOutOfRange)
}

// readAttemptsMax bounds how often a read starts over because TruncateSuffix
// cut the log between two of its segments; each retry needs another cut to
// complete meanwhile.
const readAttemptsMax = 4

// errCutDuringRead: TruncateSuffix cut the log between two segments of one
// read, so what the read holds may end in batches the log no longer has and
// continue with batches appended after the cut.
var errCutDuringRead = errors.New("log cut during read")

// readOnce is one attempt of ReadAppend.
func (l *Log) readOnce(dst []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	out, began := dst, len(dst)
	var firstTruncations uint64
	// One segment at a time: a read rarely needs more than one or two.
	for cursor := offset; ; {
		segments, truncations, next, err := l.acquireFrom(cursor, 1)
		if cursor == offset {
			firstTruncations = truncations
		} else if truncations != firstTruncations {
			segments.release()
			return dst, errCutDuringRead
		}
		if err != nil {
			if cursor > offset && errors.Is(err, ErrOffsetOutOfRange) {
				return out, nil // the start moved past the segments already read
			}
			return dst, err
		}
		view := segments[0]
		if cursor == offset && (offset >= maxOffset || offset == next) {
			segments.release()
			return dst, nil
		}
		position := int64(0)
		if cursor == offset {
			position, err = l.floorPosition(view, offset)
		}
		done := false
		if err == nil {
			out, done, err = readSegmentRange(view, position, offset, maxOffset, int64(maxBytes), out, began)
		}
		segments.release()
		if err != nil {
			return dst, fmt.Errorf("read log %s at offset %d: %w", l.dir, offset, err)
		}
		if done || view.nextOffset >= next {
			return out, nil
		}
		cursor = view.nextOffset
	}
}

// readSegmentRange appends to out the batches of one segment that Read
// returns, starting its scan at position; out[began:] is what the read
// holds so far. done reports that a limit was hit.
func readSegmentRange(view segmentView, position, offset, maxOffset, maxBytes int64, out []byte, began int) ([]byte, bool, error) {
	scan := newScanner(view.s.log, position, view.sizeBytes, false, readWindowBytes)
	start, end := int64(-1), int64(-1)
	total := int64(len(out) - began)
	done := false
	for {
		h, _, batchPosition, err := scan.next()
		if isEOF(err) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("segment %d: %w", view.s.base, err)
		}
		if h.NextOffset() <= offset {
			continue
		}
		size := int64(h.TotalBytes())
		if h.BaseOffset >= maxOffset || (total > 0 && total+size > maxBytes) {
			done = true
			break
		}
		if start < 0 {
			start = batchPosition
		}
		end, total = batchPosition+size, total+size
	}
	if start < 0 {
		return out, done, nil
	}
	out, err := appendFileRange(out, view.s, start, end)
	return out, done, err
}

// appendFileRange appends bytes [start, end) of a segment to out. Spare
// capacity in out is read into as it is: zeroing it first would cost as
// much as the read.
func appendFileRange(out []byte, s *segment, start, end int64) ([]byte, error) {
	n := len(out)
	out = slices.Grow(out, int(end-start))[:n+int(end-start)]
	read, err := s.log.ReadAt(out[n:], start)
	if read == int(end-start) {
		return out, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read segment %d bytes [%d, %d): %w", s.base, start, end, err)
}

// floorPosition returns where to start scanning a segment for offset.
func (l *Log) floorPosition(view segmentView, offset int64) (int64, error) {
	if offset <= view.s.base {
		return 0, nil
	}
	if err := l.loadIndexes(view.s); err != nil {
		return 0, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return floorPosition(view.s.offsets, relative(view.s.base, min(offset, view.nextOffset))), nil
}

// FindTimestamp returns the first batch (lowest offset, at or above
// StartOffset) whose MaxTimestamp is at least tsMs, found through the time
// index; ErrNotFound when there is none.
func (l *Log) FindTimestamp(tsMs int64) ([]byte, error) {
	return l.FindTimestampFrom(tsMs, 0)
}

// FindTimestampFrom is FindTimestamp among the batches holding offsets at or
// above from: the next candidate after a batch whose header reached tsMs but
// whose records did not.
func (l *Log) FindTimestampFrom(tsMs, from int64) ([]byte, error) {
	segments, start, err := l.acquireAll()
	if err != nil {
		return nil, err
	}
	defer segments.release()
	start = max(start, from)
	for _, view := range segments {
		if view.maxTimestampMs == noTimestamp || view.maxTimestampMs < tsMs || view.nextOffset <= start {
			continue
		}
		whole, err := l.findInSegment(view, tsMs, start)
		if errors.Is(err, ErrNotFound) {
			continue // only batches below the start offset reach tsMs here
		}
		return whole, err
	}
	return nil, fmt.Errorf("find timestamp %d in log %s: %w", tsMs, l.dir, ErrNotFound)
}

// findInSegment finds the first batch of one segment at or above start whose
// MaxTimestamp reaches tsMs.
func (l *Log) findInSegment(view segmentView, tsMs, start int64) ([]byte, error) {
	s := view.s
	if err := l.loadIndexes(s); err != nil {
		return nil, err
	}
	l.mu.RLock()
	position := int64(0)
	if entry, ok := timeFloor(s.times, tsMs); ok {
		position = floorPosition(s.offsets, entry.relativeOffset)
	}
	if start > s.base {
		position = max(position, floorPosition(s.offsets, relative(s.base, min(start, view.nextOffset))))
	}
	l.mu.RUnlock()
	scan := newScanner(s.log, position, view.sizeBytes, false, readWindowBytes)
	for {
		h, _, batchPosition, err := scan.next()
		if isEOF(err) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("find timestamp %d in segment %d: %w", tsMs, s.base, err)
		}
		if h.NextOffset() > start && h.MaxTimestamp >= tsMs {
			return appendFileRange(nil, s, batchPosition, batchPosition+int64(h.TotalBytes()))
		}
	}
}

// MaxTimestamp returns the largest batch MaxTimestamp in the log and the base
// offset of the first batch holding it; ErrNotFound when the log holds no
// batch. Segments count whole, even when the start offset lies inside one.
func (l *Log) MaxTimestamp() (tsMs int64, batchBase int64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	found := false
	for _, s := range l.segments {
		if s.maxTimestampMs != noTimestamp && (!found || s.maxTimestampMs > tsMs) {
			tsMs, batchBase, found = s.maxTimestampMs, s.maxTimestampOffset, true
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("max timestamp of log %s: %w", l.dir, ErrNotFound)
	}
	return tsMs, batchBase, nil
}

// ReadSegment returns the whole content of the sealed segment with the given
// base offset, for the compactor; ErrNotFound when there is no such sealed
// segment.
func (l *Log) ReadSegment(base int64) ([]byte, error) {
	l.mu.RLock()
	var view segmentView
	for _, s := range l.segments[:max(len(l.segments)-1, 0)] {
		if s.base == base {
			s.acquire()
			view = segmentView{s: s, sizeBytes: s.sizeBytes}
		}
	}
	l.mu.RUnlock()
	if view.s == nil {
		return nil, fmt.Errorf("read segment %d of log %s: no such sealed segment: %w", base, l.dir, ErrNotFound)
	}
	defer view.s.release()
	return appendFileRange(make([]byte, 0, view.sizeBytes), view.s, 0, view.sizeBytes)
}
