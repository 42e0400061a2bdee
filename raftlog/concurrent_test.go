package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// holdFS holds one call of a file while armed: the first segment Sync
// (holdSync), or the first raft-meta Write, which then writes half its
// bytes and fails as a full disk does (holdMetaWrite). The test sees the
// call start on entered and lets it go on by closing release.
type holdFS struct {
	vfs.FS
	holdSync, holdMetaWrite atomic.Bool
	entered, release        chan struct{}
}

type holdFile struct {
	vfs.File
	fs   *holdFS
	name string
}

func newHoldFS(under vfs.FS) *holdFS {
	return &holdFS{FS: under, entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &holdFile{f, h, name}, nil
}

func (h *holdFS) Create(n string) (vfs.File, error) {
	f, err := h.FS.Create(n)
	return h.wrap(n, f, err)
}
func (h *holdFS) OpenAppend(n string) (vfs.File, error) {
	f, err := h.FS.OpenAppend(n)
	return h.wrap(n, f, err)
}

func (f *holdFile) Sync() error {
	if strings.HasSuffix(f.name, ".log") && f.fs.holdSync.CompareAndSwap(true, false) {
		f.fs.entered <- struct{}{}
		<-f.fs.release
	}
	return f.File.Sync()
}

func (f *holdFile) Write(p []byte) (int, error) {
	if strings.HasSuffix(f.name, metaFileName) && f.fs.holdMetaWrite.CompareAndSwap(true, false) {
		f.fs.entered <- struct{}{}
		<-f.fs.release
		n, _ := f.File.Write(p[:len(p)/2])
		return n, fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	return f.File.Write(p)
}

// appendedTwo creates a log holding entries 11 (term 3's first) and 12
// (data), synced, and 13 (data) not.
func appendedTwo(t *testing.T, fsys vfs.FS) (*Log, *model) {
	t.Helper()
	l := createLog(t, fsys)
	m := newModel(t)
	ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	ents, begins, end = m.build(t, 13, []spec{{kind: 'd', term: 3, records: 1}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	return l, m
}

// TestSyncAfterATornMetaWrite: the write side's raft-meta record is torn
// (disk full) while a flusher's Sync is syncing the segments. The Sync
// must not append its Synced record after the torn bytes, sync them and
// write raft-state past them: the next Open would take them for damage.
func TestSyncAfterATornMetaWrite(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	h := newHoldFS(efs)
	l, m := appendedTwo(t, h)
	// A vote set: the Sync would write raft-state.
	if err := l.SetHardState(&raftpb.HardState{Term: proto.Uint64(3), Vote: proto.Uint64(2)}); err != nil {
		t.Fatal(err)
	}
	h.holdSync.Store(true)
	synced := make(chan error)
	go func() { synced <- l.Sync() }()
	<-h.entered
	remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: metaFileName, Err: syscall.ENOSPC})
	conf, _, _ := m.build(t, 14, []spec{{kind: 'c', term: 3}})
	err := l.Append(conf, 0)
	remove()
	if err == nil {
		t.Fatal("Append with a failing raft-meta write succeeded")
	}
	close(h.release)
	if err := <-synced; !errors.Is(err, storage.ErrFailed) {
		t.Fatalf("Sync after the write side failed: %v, want storage.ErrFailed", err)
	}
	l.Close()
	l, err = Open(efs, "p", testCfg, 0)
	if err != nil {
		t.Fatalf("Open after a disk-full write: %v", err)
	}
	l.Close()
}

// TestAppendAfterATornSyncedRecord: a flusher's Synced record is torn
// (disk full) while the write side appends a conf change and data. The
// write side must not write its Entry record after the torn bytes: the
// next Open would cut it with them and keep the batch after it, one index
// too low.
func TestAppendAfterATornSyncedRecord(t *testing.T) {
	h := newHoldFS(vfs.NewMem())
	l, m := appendedTwo(t, h)
	h.holdMetaWrite.Store(true)
	synced := make(chan error)
	go func() { synced <- l.Sync() }()
	<-h.entered // the flusher holds metaWriteMu, writing its Synced record
	next, _, _ := m.build(t, 14, []spec{{kind: 'c', term: 3}, {kind: 'd', term: 3, records: 2}})
	appended := make(chan error)
	go func() { appended <- l.Append(next, 0) }()
	time.Sleep(50 * time.Millisecond) // the write side reaches metaWriteMu; either order must hold
	close(h.release)
	if err := <-synced; err == nil {
		t.Fatal("Sync with a torn Synced record succeeded")
	}
	appendErr := <-appended
	l.Close()
	l, err := Open(h, "p", testCfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	last, _ := l.LastIndex()
	if last >= 14 {
		got, err := l.Entries(14, last+1, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range got {
			want := next[k]
			if e.GetType() != want.GetType() || !bytes.Equal(e.GetData(), want.GetData()) {
				t.Fatalf("entry %d is %v with %d bytes, appended as %v with %d bytes (Append: %v)",
					e.GetIndex(), e.GetType(), len(e.GetData()), want.GetType(), len(want.GetData()), appendErr)
			}
		}
	}
}
