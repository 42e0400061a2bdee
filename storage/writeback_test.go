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

// TestAppendStartsWriteback proves appends ask their segment file to start
// writing back every whole page they filled, once, in order, and never the
// partial page the next append writes into.
func TestAppendStartsWriteback(t *testing.T) {
	fsys := &writebackFS{FS: vfs.NewMem(), ranges: map[string][][2]int64{}}
	cfg := testConfig()
	cfg.SegmentBytes = 64 << 10
	l := mustOpen(t, fsys, "/data/p0", cfg, 0)
	defer l.Close()
	sizes := map[int64]int64{} // segment base -> bytes
	var base int64
	for range 200 { // about 1 KiB each: several segments of 64 KiB
		b := appendN(t, l, 1, 1, 1000, 0)[0]
		l.mu.RLock()
		base = l.active().base
		l.mu.RUnlock()
		sizes[base] += int64(len(b))
	}
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	if len(sizes) < 2 || len(fsys.ranges) != len(sizes) {
		t.Fatalf("writeback asked of %d segment files, %d written", len(fsys.ranges), len(sizes))
	}
	for name, ranges := range fsys.ranges {
		next := int64(0)
		for _, r := range ranges {
			if r[0] != next || r[1] <= 0 || (r[0]+r[1])%writebackPageBytes != 0 {
				t.Errorf("%s: writeback of [%d, +%d) after %d: want whole pages, each once, in order", name, r[0], r[1], next)
			}
			next = r[0] + r[1]
		}
		var size int64
		for segBase, n := range sizes {
			if strings.HasSuffix(name, "/"+segmentFileName(segBase, logSuffix)) {
				size = n
			}
		}
		if want := size - size%writebackPageBytes; next != want {
			t.Errorf("%s: writeback asked up to %d of %d bytes, want every whole page (%d)", name, next, size, want)
		}
	}
}
