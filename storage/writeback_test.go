package storage

import (
	"strings"
	"sync"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// writebackFS records the ranges of segment files the log asks to start
// writing back.
type writebackFS struct {
	vfs.FS
	mu     sync.Mutex
	ranges map[string][][2]int64
}

func (w *writebackFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, logSuffix) {
		return f, err
	}
	return &writebackFile{File: f, fs: w, name: name}, nil
}

func (w *writebackFS) Create(name string) (vfs.File, error) {
	f, err := w.FS.Create(name)
	return w.wrap(name, f, err)
}

func (w *writebackFS) OpenAppend(name string) (vfs.File, error) {
	f, err := w.FS.OpenAppend(name)
	return w.wrap(name, f, err)
}

type writebackFile struct {
	vfs.File
	fs   *writebackFS
	name string
}

func (f *writebackFile) StartWriteback(offset, length int64) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.fs.ranges[f.name] = append(f.fs.ranges[f.name], [2]int64{offset, length})
}

// TestAppendStartsWriteback proves each append asks its segment file to
// start writing back exactly the bytes it wrote, so the flusher's sync
// finds them on their way to the device; the ranges tile each segment.
func TestAppendStartsWriteback(t *testing.T) {
	fsys := &writebackFS{FS: vfs.NewMem(), ranges: map[string][][2]int64{}}
	l := mustOpen(t, fsys, "/data/p0", testConfig(), 0)
	defer l.Close()
	batches := appendN(t, l, 20, 3, 100, 0) // several segments of 4 KiB
	var total int64
	for _, b := range batches {
		total += int64(len(b))
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if len(fsys.ranges) < 2 {
		t.Fatalf("writeback asked of %d segment files, want every segment appended to (at least 2)", len(fsys.ranges))
	}
	var asked, calls int64
	for name, ranges := range fsys.ranges {
		next := int64(0)
		for _, r := range ranges {
			if r[0] != next || r[1] <= 0 {
				t.Errorf("%s: writeback of [%d, +%d) after %d: want each append's own range, in order", name, r[0], r[1], next)
			}
			next = r[0] + r[1]
			asked += r[1]
			calls++
		}
	}
	if asked != total || calls != int64(len(batches)) {
		t.Errorf("writeback of %d bytes in %d calls, want the %d bytes of %d appends", asked, calls, total, len(batches))
	}
}
