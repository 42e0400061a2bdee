package kafka

// Zero-copy fetch responses. On a plain TCP connection, a fetch takes its
// records as sections of segment files (storage.Section) instead of reading
// them, and the writer sends each section from the file to the socket with
// sendfile, so record bytes never pass through user memory: no read into a
// buffer, no copy into the response, no copy out to the socket. Over TLS
// the bytes must be encrypted in user memory, so those connections read
// and copy as before, and so do files of filesystems other than the
// operating system's (tests' in-memory ones, fault injectors).
//
// The response is still encoded by kmsg: each partition's records are a
// 12-byte placeholder (a random 8-byte marker chosen per server, then the
// section list's index), which the writer finds in the encoded response and
// replaces, length prefix included, by the sections. A marker can only be
// found where a placeholder is: no other bytes of a fetch response come
// from the client but topic names, which cannot hold its bytes by chance
// (8 random bytes), and an index that is not the next one expected fails
// the write and closes the connection rather than send a broken response.
//
// The sections hold their segments open from the fetch's final read until
// the response is written (or dropped with its connection): a suffix
// truncation of such a segment waits for them, at most WriteTimeout per
// response queued before it. The reads of a long poll before its final one
// let go of theirs at once.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/cairnlog/cairn/storage"
)

// placeholderBytes is the size of a partition's records in an encoded
// zero-copy response before the writer replaces them.
const placeholderBytes = 12

// newPlaceholderMarker draws the server's marker from its env's Rand
// (seeded from the operating system outside simulations).
func newPlaceholderMarker(r io.Reader) (m [8]byte) {
	_, _ = io.ReadFull(r, m[:]) // an env.Rand never fails
	return m
}

// fileParts are the record sections of one fetch response, for the writer.
type fileParts struct {
	marker [8]byte // the server's placeholder marker
	// partitions holds each placeholder's sections, by index.
	partitions [][]storage.Section
}

// add registers one partition's sections and returns its placeholder.
func (f *fileParts) add(sections []storage.Section) []byte {
	p := make([]byte, 0, placeholderBytes)
	p = append(p, f.marker[:]...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(f.partitions)))
	f.partitions = append(f.partitions, sections)
	return p
}

// release lets every section go; f is empty afterwards.
func (f *fileParts) release() {
	for _, sections := range f.partitions {
		storage.ReleaseSections(sections)
	}
	f.partitions = f.partitions[:0]
}

// bytes is the record bytes the sections add to a response (0 for nil).
func (f *fileParts) bytes() int {
	if f == nil {
		return 0
	}
	n := 0
	for _, sections := range f.partitions {
		n += sectionsBytes(sections)
	}
	return n
}

// sectionsBytes is the record bytes of sections.
func sectionsBytes(sections []storage.Section) int {
	n := int64(0)
	for _, s := range sections {
		n += s.Length
	}
	return int(n)
}

// sendable reports whether every section's file can be sent with sendfile.
func sendable(sections []storage.Section) bool {
	for _, s := range sections {
		if _, ok := s.File.(syscall.Conn); !ok {
			return false
		}
	}
	return true
}

// zeroCopy is the TCP connection to send fetched records on with sendfile,
// or nil where they must be copied (TLS, or no sendfile here).
func (c *conn) zeroCopy() *net.TCPConn {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok || !sendfileSupported {
		return nil
	}
	return tc
}

// filePiece is where one placeholder is in an encoded response.
type filePiece struct {
	prefixAt, end int // the placeholder's length prefix, and the byte after it
	sections      []storage.Section
}

// locatePlaceholders finds the placeholders of frame, an encoded response
// (size prefix included), in order, and returns them with the frame's size
// once the sections replace them. flexible responses prefix bytes with a
// varint of length+1, others with an int32 length.
func locatePlaceholders(frame []byte, f *fileParts, flexible bool) ([]filePiece, int64, error) {
	size := int64(len(frame) - 4)
	var pieces []filePiece
	cursor, next := 0, 0
	for {
		at := bytes.Index(frame[cursor:], f.marker[:])
		if at < 0 {
			break
		}
		at += cursor
		end := at + placeholderBytes
		if end > len(frame) {
			return nil, 0, fmt.Errorf("fetch response placeholder cut at byte %d", at)
		}
		// Partitions are encoded in the order they were added; those left
		// out of the response (a session's answer) leave gaps.
		i := int(binary.BigEndian.Uint32(frame[at+8:]))
		if i < next || i >= len(f.partitions) {
			return nil, 0, fmt.Errorf("fetch response placeholder %d out of order at byte %d", i, at)
		}
		next = i + 1
		prefixAt := at - 4
		if flexible {
			prefixAt = at - 1
			if prefixAt < cursor || frame[prefixAt] != placeholderBytes+1 {
				return nil, 0, errors.New("fetch response placeholder without its varint length")
			}
		} else if prefixAt < cursor || binary.BigEndian.Uint32(frame[prefixAt:]) != placeholderBytes {
			return nil, 0, errors.New("fetch response placeholder without its length")
		}
		sections := f.partitions[i]
		n := sectionsBytes(sections)
		size += int64(len(recordsPrefix(nil, n, flexible))+n) - int64(at+placeholderBytes-prefixAt)
		pieces = append(pieces, filePiece{prefixAt: prefixAt, end: end, sections: sections})
		cursor = end
	}
	return pieces, size, nil
}

// recordsPrefix appends the length prefix of n record bytes.
func recordsPrefix(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(dst, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// writeWithFiles writes frame, an encoded response with placeholders,
// sending each placeholder's sections from their files. Nothing is written
// when the placeholders cannot be found as encoded.
func writeWithFiles(w *bufio.Writer, tc *net.TCPConn, frame []byte, f *fileParts, flexible bool) error {
	pieces, size, err := locatePlaceholders(frame, f, flexible)
	if err != nil {
		return err
	}
	if size > int64(^uint32(0)>>1) {
		return fmt.Errorf("fetch response of %d bytes", size)
	}
	var prefix [4]byte
	binary.BigEndian.PutUint32(prefix[:], uint32(size))
	if _, err := w.Write(prefix[:]); err != nil {
		return err
	}
	cursor := 4
	var scratch [8]byte
	for _, p := range pieces {
		if _, err := w.Write(frame[cursor:p.prefixAt]); err != nil {
			return err
		}
		if _, err := w.Write(recordsPrefix(scratch[:0], sectionsBytes(p.sections), flexible)); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for _, s := range p.sections {
			if err := sendSection(tc, s); err != nil {
				return err
			}
			sentfileBytes.Add(float64(s.Length))
		}
		cursor = p.end
	}
	_, err = w.Write(frame[cursor:])
	return err
}

// sendSection sends one section from its file to tc.
func sendSection(tc *net.TCPConn, s storage.Section) error {
	src, err := s.File.(syscall.Conn).SyscallConn()
	if err != nil {
		return fmt.Errorf("send records: %w", err)
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("send records: %w", err)
	}
	var sendErr error
	if err := src.Control(func(in uintptr) {
		sendErr = sendfile(dst, int(in), s.Offset, s.Length)
	}); err != nil {
		return fmt.Errorf("send records: %w", err)
	}
	if sendErr != nil {
		return fmt.Errorf("send %d record bytes at %d: %w", s.Length, s.Offset, sendErr)
	}
	return nil
}
