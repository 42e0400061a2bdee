package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Window sizes for reading batches sequentially: reads stay within about
// one index interval, recovery reads whole segments.
const (
	readWindowBytes     = 16 << 10
	recoveryWindowBytes = 1 << 20
)

// scanner walks the batches of one segment file from a position up to an
// end, reading through a window so small batches cost one read per window.
type scanner struct {
	file        vfs.File
	position    int64 // where the next batch starts
	end         int64
	verify      bool // check length and CRC32C of every batch (batch.Next)
	windowBytes int
	window      []byte
	windowStart int64
}

func newScanner(file vfs.File, from, end int64, verify bool, windowBytes int) *scanner {
	return &scanner{file: file, position: from, end: end, verify: verify, windowBytes: windowBytes}
}

// next returns the next batch's header and position; whole holds the batch
// bytes only when verifying, and only until the next call. At the end it
// returns io.EOF. A batch cut off by the end wraps batch.ErrShort, an invalid
// one batch.ErrCorrupt; any other error is a failed read.
func (s *scanner) next() (h batch.Header, whole []byte, position int64, err error) {
	if s.position >= s.end {
		return batch.Header{}, nil, s.position, io.EOF
	}
	position = s.position
	buf, err := s.bytesAt(position, batch.HeaderBytes)
	if err != nil {
		return batch.Header{}, nil, position, err
	}
	h, err = batch.ParseHeader(buf)
	if err != nil {
		return batch.Header{}, nil, position, fmt.Errorf("at position %d: %w", position, err)
	}
	total := int64(h.TotalBytes())
	if position+total > s.end {
		return batch.Header{}, nil, position, fmt.Errorf("batch at position %d needs %d bytes, %d remain: %w",
			position, total, s.end-position, batch.ErrShort)
	}
	if s.verify {
		if buf, err = s.bytesAt(position, int(total)); err != nil {
			return batch.Header{}, nil, position, err
		}
		if h, whole, _, err = batch.Next(buf[:total]); err != nil {
			return batch.Header{}, nil, position, fmt.Errorf("at position %d: %w", position, err)
		}
	}
	s.position = position + total
	return h, whole, position, nil
}

// bytesAt returns the bytes from position to the end of the window, holding
// at least n bytes or everything up to s.end.
func (s *scanner) bytesAt(position int64, n int) ([]byte, error) {
	want := min(int64(n), s.end-position)
	windowEnd := s.windowStart + int64(len(s.window))
	if position >= s.windowStart && position+want <= windowEnd {
		return s.window[position-s.windowStart:], nil
	}
	size := max(want, min(int64(s.windowBytes), s.end-position))
	if int64(cap(s.window)) < size {
		s.window = make([]byte, size)
	}
	s.window, s.windowStart = s.window[:size], position
	read, err := s.file.ReadAt(s.window, position)
	if int64(read) == size {
		return s.window, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		// The file is shorter than the size the log recorded for it.
		err = io.ErrUnexpectedEOF
	}
	s.window = s.window[:0]
	return nil, fmt.Errorf("read %d bytes at position %d: %w", size, position, err)
}

// isInvalidBatch reports errors meaning the bytes are not a valid batch, as
// opposed to a failed read.
func isInvalidBatch(err error) bool {
	return errors.Is(err, batch.ErrShort) || errors.Is(err, batch.ErrCorrupt)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
