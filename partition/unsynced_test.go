package partition

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

// heldSyncFS blocks every file sync while held.
type heldSyncFS struct {
	vfs.FS
	mu   sync.Mutex
	gate chan struct{} // closed while syncs pass
}

func newHeldSyncFS(inner vfs.FS) *heldSyncFS {
	h := &heldSyncFS{FS: inner, gate: make(chan struct{})}
	close(h.gate)
	return h
}

func (h *heldSyncFS) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
}

func (h *heldSyncFS) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.gate:
	default:
		close(h.gate)
	}
}

func (h *heldSyncFS) wait() {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	<-gate
}

type heldSyncFile struct {
	vfs.File
	fs *heldSyncFS
}

func (f heldSyncFile) Sync() error {
	f.fs.wait()
	return f.File.Sync()
}

func (h *heldSyncFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return heldSyncFile{File: f, fs: h}, nil
}

func (h *heldSyncFS) Create(name string) (vfs.File, error)     { return h.wrap(h.FS.Create(name)) }
func (h *heldSyncFS) OpenAppend(name string) (vfs.File, error) { return h.wrap(h.FS.OpenAppend(name)) }
func (h *heldSyncFS) Open(name string) (vfs.File, error)       { return h.wrap(h.FS.Open(name)) }

// TestCleanerIgnoresUnsyncedDeletion: a deletion in the log but not yet
// durable removes nothing — were it lost in a crash, the events it hid
// must still be there — while WaitStreamDurable holds readers back.
func TestCleanerIgnoresUnsyncedDeletion(t *testing.T) {
	held := newHeldSyncFS(vfs.NewMem())
	cfg := DefaultConfig()
	cfg.DeleteSegments, cfg.Streams = false, true
	cfg.Storage.SegmentBytes = 512
	p, err := Open(testEnv(held), "/data/ev-0", "ev", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer held.release() // before Close, which syncs
	// One batch each, so the segments roll.
	for range 20 {
		appendDurable(t, p, batch.Build([]batch.Record{{Key: []byte("s"), Value: []byte("{}")}}, batch.None))
	}
	held.hold()
	deletion := batch.Build([]batch.Record{{Key: []byte("s"), Headers: []batch.RecordHeader{
		{Key: streams.HeaderStreamOp, Value: []byte(streams.OpDelete)}}}}, batch.None)
	res, err := p.Append(deletion) // its sync is held back
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WaitStreamDurable(ctx, "s"); err == nil {
		t.Fatal("WaitStreamDurable returned before the deletion was durable")
	}
	cleaned := make(chan error, 1)
	go func() { cleaned <- p.Clean(time.Now().UnixMilli()) }()
	select {
	case err := <-cleaned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second): // only when failing: the rewrite waits for the held sync
		held.release()
		<-cleaned
		t.Fatal("the cleaner rewrote segments for a deletion that is not durable")
	}
	events := 0
	for _, v := range readRecords(t, p, 0, res.BaseOffset) {
		if _, op := streams.Header(v, streams.HeaderStreamOp); !op {
			events++
		}
	}
	if events != 20 {
		t.Fatalf("%d of 20 events left after cleaning under a deletion that is not durable", events)
	}
	held.release()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitStreamDurable(ctx, "s"); err != nil {
		t.Fatalf("after the sync: %v", err)
	}
}

// readRecords returns the records in [from, to).
func readRecords(t *testing.T, p *Partition, from, to int64) []batch.Record {
	t.Helper()
	var out []batch.Record
	for from < to {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		start := from
		next := eachRecord(t, res.Records, func(r batch.Record) {
			if r.Offset >= start && r.Offset < to {
				out = append(out, r)
			}
		})
		if next <= from {
			break
		}
		from = next
	}
	return out
}
