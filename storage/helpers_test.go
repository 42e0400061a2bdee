package storage

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// makeBatch encodes a valid batch at base with records records of
// valueBytes each; record i has timestamp firstTsMs+i.
func makeBatch(base int64, records, valueBytes int, firstTsMs int64) []byte {
	recs := make([]batch.Record, records)
	for i := range recs {
		value := bytes.Repeat([]byte{byte(base + int64(i))}, valueBytes)
		recs[i] = batch.Record{Offset: base + int64(i), TimestampMs: firstTsMs + int64(i), Key: []byte(fmt.Sprint(i)), Value: value}
	}
	tmpl := batch.Header{BaseOffset: base, PartitionLeaderEpoch: 0, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	whole, err := batch.Encode(tmpl, int32(records-1), recs, batch.None)
	if err != nil {
		panic(err)
	}
	return whole
}

// splitBatches parses concatenated batches.
func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		_, whole, rest, err := batch.Next(b)
		if err != nil {
			t.Fatalf("split batches: %v", err)
		}
		out, b = append(out, whole), rest
	}
	return out
}

func header(t testing.TB, whole []byte) batch.Header {
	t.Helper()
	h, err := batch.ParseHeader(whole)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustOpen(t testing.TB, fsys vfs.FS, dir string, cfg Config, nowMs int64) *Log {
	t.Helper()
	l, err := Open(fsys, dir, cfg, nowMs)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// appendN appends n batches of records records each and returns them.
func appendN(t testing.TB, l *Log, n, records, valueBytes int, tsMs int64) [][]byte {
	t.Helper()
	var out [][]byte
	for range n {
		b := makeBatch(l.NextOffset(), records, valueBytes, tsMs)
		if err := l.Append(b, tsMs); err != nil {
			t.Fatalf("append at %d: %v", l.NextOffset(), err)
		}
		out = append(out, b)
	}
	return out
}

// readAll reads every batch from offset to the log end.
func readAll(t testing.TB, l *Log, offset int64) [][]byte {
	t.Helper()
	var out [][]byte
	for offset < l.NextOffset() {
		data, err := l.Read(offset, 64<<10, l.NextOffset())
		if err != nil {
			t.Fatalf("read at %d: %v", offset, err)
		}
		if len(data) == 0 {
			break
		}
		batches := splitBatches(t, data)
		out = append(out, batches...)
		offset = header(t, batches[len(batches)-1]).NextOffset()
	}
	return out
}

func equalBatches(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func testConfig() Config {
	return Config{SegmentBytes: 4096, SegmentMs: 1 << 40, IndexIntervalBytes: 256}
}

// filesystems runs a test body on an in-memory and on the real filesystem.
func filesystems(t *testing.T, body func(t *testing.T, fsys vfs.FS, dir string)) {
	t.Run("mem", func(t *testing.T) { body(t, vfs.NewMem(), "/data/p0") })
	t.Run("os", func(t *testing.T) { body(t, vfs.Default(), t.TempDir()+"/p0") })
}

// countingFS counts bytes read from .log files, to prove which operations
// read batch data.
type countingFS struct {
	vfs.FS
	logBytesRead atomic.Int64
	logReads     atomic.Int64
}

func (c *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, logSuffix) {
		return f, err
	}
	return &countingFile{File: f, fs: c}, nil
}

func (c *countingFS) Create(name string) (vfs.File, error) {
	f, err := c.FS.Create(name)
	return c.wrap(name, f, err)
}

func (c *countingFS) OpenAppend(name string) (vfs.File, error) {
	f, err := c.FS.OpenAppend(name)
	return c.wrap(name, f, err)
}

func (c *countingFS) Open(name string) (vfs.File, error) {
	f, err := c.FS.Open(name)
	return c.wrap(name, f, err)
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.fs.logReads.Add(1)
	f.fs.logBytesRead.Add(int64(n))
	return n, err
}

// noLandFS fails writes to files whose name contains failOn with ENOSPC
// without writing anything: the other behaviour of a full disk (ErrorFS
// lands half the bytes).
type noLandFS struct {
	vfs.FS
	failOn atomic.Pointer[string]
}

func (n *noLandFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &noLandFile{File: f, fs: n, name: name}, nil
}

func (n *noLandFS) Create(name string) (vfs.File, error) {
	f, err := n.FS.Create(name)
	return n.wrap(name, f, err)
}

func (n *noLandFS) OpenAppend(name string) (vfs.File, error) {
	f, err := n.FS.OpenAppend(name)
	return n.wrap(name, f, err)
}

type noLandFile struct {
	vfs.File
	fs   *noLandFS
	name string
}

func (f *noLandFile) Write(p []byte) (int, error) {
	if failOn := f.fs.failOn.Load(); failOn != nil && strings.Contains(f.name, *failOn) {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func isCorruption(err error) bool {
	var corrupt *CorruptionError
	return errors.As(err, &corrupt)
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
