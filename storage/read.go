package storage

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
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
	out := dst
	err := l.read(offset, maxBytes, maxOffset, func(r segmentRange) (err error) {
		out, err = appendFileRange(out, r.s, r.start, r.end)
		return err
	}, func() { out = dst })
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Section is a byte range of a segment file holding whole batches, for
// readers that send them on without reading them (sendfile). The segment
// stays open, even if retention or compaction removes it meanwhile, until
// Release; bytes below the high watermark are never rewritten in place.
type Section struct {
	File   vfs.File
	Offset int64 // where the range starts in File
	Length int64
	// NextOffset is the offset after the range's last batch.
	NextOffset int64
	s          *segment
}

// Release lets the segment go; the section must not be used afterwards.
func (s Section) Release() { s.s.release() }

// ReleaseSections releases every section of sections.
func ReleaseSections(sections []Section) {
	for _, s := range sections {
		s.Release()
	}
}

// ReadSections is ReadAppend returning where the batches lie, one section
// per segment, appended to dst, instead of their bytes. The caller releases
// each section added. On error it returns dst unchanged.
func (l *Log) ReadSections(dst []Section, offset int64, maxBytes int, maxOffset int64) ([]Section, error) {
	out := dst
	err := l.read(offset, maxBytes, maxOffset, func(r segmentRange) error {
		r.s.acquire()
		out = append(out, Section{File: r.s.log, Offset: r.start, Length: r.end - r.start, NextOffset: r.nextOffset, s: r.s})
		return nil
	}, func() {
		ReleaseSections(out[len(dst):])
		out = dst
	})
	if err != nil {
		return dst, err
	}
	return out, nil
}

// segmentRange is the part of one segment a read returns: bytes [start,
// end), the batches up to nextOffset.
type segmentRange struct {
	s                      *segment
	start, end, nextOffset int64
}

// read finds the batches Read returns and hands them to emit, a range of
// one segment at a time, while the segment is held; discard drops what emit
// took when a read starts over or fails.
func (l *Log) read(offset int64, maxBytes int, maxOffset int64, emit func(segmentRange) error, discard func()) error {
	for range readAttemptsMax {
		err := l.readOnce(offset, maxBytes, maxOffset, emit)
		if err != nil {
			discard()
		}
		if !errors.Is(err, errCutDuringRead) {
			return err
		}
	}
	return fmt.Errorf("read log %s at offset %d: the log was cut during %d attempts: %w",
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

// readOnce is one attempt of read.
func (l *Log) readOnce(offset int64, maxBytes int, maxOffset int64, emit func(segmentRange) error) error {
	var firstTruncations uint64
	total := int64(0)
	// One segment at a time: a read rarely needs more than one or two.
	for cursor := offset; ; {
		segments, truncations, next, err := l.acquireFrom(cursor, 1)
		if cursor == offset {
			firstTruncations = truncations
		} else if truncations != firstTruncations {
			segments.release()
			return errCutDuringRead
		}
		if err != nil {
			if cursor > offset && errors.Is(err, ErrOffsetOutOfRange) {
				return nil // the start moved past the segments already read
			}
			return err
		}
		view := segments[0]
		if cursor == offset && (offset >= maxOffset || offset == next) {
			segments.release()
			return nil
		}
		position := int64(0)
		if cursor == offset {
			position, err = l.floorPosition(view, offset)
		}
		done := false
		if err == nil {
			var r segmentRange
			r, done, err = findSegmentRange(view, position, offset, maxOffset, int64(maxBytes), total)
			if err == nil && r.end > r.start {
				total += r.end - r.start
				err = emit(r)
			}
		}
		segments.release()
		if err != nil {
			return fmt.Errorf("read log %s at offset %d: %w", l.dir, offset, err)
		}
		if done || view.nextOffset >= next {
			return nil
		}
		cursor = view.nextOffset
	}
}

// findSegmentRange finds the batches of one segment that Read returns,
// starting its scan at position; total is what the read holds so far.
// done reports that a limit was hit.
func findSegmentRange(view segmentView, position, offset, maxOffset, maxBytes, total int64) (segmentRange, bool, error) {
	scan := newScanner(view.s.log, position, view.sizeBytes, false, readWindowBytes)
	r := segmentRange{s: view.s, start: -1, end: -1}
	done := false
	// Neither a batch's base offset nor its length is covered by its CRC:
	// a bit flipped there moves the batch out of place, which would
	// otherwise end the read early, silently, as if the log ended there.
	expected := view.s.base
	for {
		h, _, batchPosition, err := scan.next()
		if isEOF(err) {
			break
		}
		if err == nil && (h.BaseOffset < expected || h.LastOffsetDelta < 0 || h.NextOffset() > view.nextOffset) {
			err = fmt.Errorf("batch at position %d has offsets [%d, %d), want within [%d, %d): %w",
				batchPosition, h.BaseOffset, h.NextOffset(), expected, view.nextOffset, batch.ErrCorrupt)
		}
		if err != nil {
			return r, false, fmt.Errorf("segment %d: %w", view.s.base, err)
		}
		expected = h.NextOffset()
		if h.NextOffset() <= offset {
			continue
		}
		size := int64(h.TotalBytes())
		if h.BaseOffset >= maxOffset || (total > 0 && total+size > maxBytes) {
			done = true
			break
		}
		if r.start < 0 {
			r.start = batchPosition
		}
		r.end, r.nextOffset, total = batchPosition+size, h.NextOffset(), total+size
	}
	return r, done, nil
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
