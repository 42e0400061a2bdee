package partition

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
)

// gateFS holds the first Sync, once armed, of a file whose name contains
// match until released, so a test can look at the partition while an fsync
// is pending.
type gateFS struct {
	vfs.FS
	match   string
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{} // closed when the held Sync starts
	release chan struct{} // close to let it finish
}

func newGateFS(inner vfs.FS, match string) *gateFS {
	return &gateFS{FS: inner, match: match, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	return g.wrap(name, f, err)
}

func (g *gateFS) OpenAppend(name string) (vfs.File, error) {
	f, err := g.FS.OpenAppend(name)
	return g.wrap(name, f, err)
}

func (g *gateFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.Contains(name, g.match) {
		return f, err
	}
	return &gateFile{File: f, gate: g}, nil
}

type gateFile struct {
	vfs.File
	gate *gateFS
}

func (f *gateFile) Sync() error {
	if !f.gate.armed.Load() {
		return f.File.Sync()
	}
	f.gate.once.Do(func() {
		close(f.gate.entered)
		<-f.gate.release
	})
	return f.File.Sync()
}

// TestEpochReadsDoNotWaitForCheckpoint: while a recovery checkpoint holds
// the writer lock across an fsync, LeaderEpoch and EndOffsetForEpoch (asked
// by every Metadata and Fetch) still answer.
func TestEpochReadsDoNotWaitForCheckpoint(t *testing.T) {
	gate := newGateFS(vfs.NewMem(), "log-state")
	p := open(t, gate)
	defer p.Close()
	released := false
	defer func() {
		if !released {
			close(gate.release)
		}
	}()
	gate.armed.Store(true)
	p.mu.Lock()
	p.lastCheckpoint = time.Time{} // the next flush records a checkpoint
	p.mu.Unlock()
	appendDurable(t, p, produce(t, 2, "v"))
	select {
	case <-gate.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no checkpoint fsync started")
	}
	if p.mu.TryLock() {
		p.mu.Unlock()
		t.Fatal("the checkpoint fsync runs without the writer lock: this test shows nothing")
	}
	done := make(chan [3]int64, 1)
	go func() {
		epoch, end := p.EndOffsetForEpoch(0)
		done <- [3]int64{int64(p.LeaderEpoch()), int64(epoch), end}
	}()
	select {
	case got := <-done:
		if got != [3]int64{0, 0, 2} {
			t.Fatalf("leader epoch, end epoch, end offset = %v, want [0 0 2]", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("epoch reads wait for the checkpoint's fsync")
	}
	close(gate.release)
	released = true
}
