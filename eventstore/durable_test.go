package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/storage/vfs"
)

// syncGate holds back every file sync while it is closed, and says when one
// is waiting: the flusher then has appended records it cannot make durable.
type syncGate struct {
	mu      sync.Mutex
	open    chan struct{} // closed while syncs pass
	waiting chan struct{} // receives when a sync blocks
}

func newSyncGate() *syncGate {
	g := &syncGate{open: make(chan struct{}), waiting: make(chan struct{}, 1)}
	close(g.open)
	return g
}

func (g *syncGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *syncGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
}

func (g *syncGate) pass() {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return
	default:
	}
	select {
	case g.waiting <- struct{}{}:
	default:
	}
	<-open
}

type gatedFS struct {
	vfs.FS
	gate *syncGate
}

type gatedFile struct {
	vfs.File
	gate *syncGate
}

func (f gatedFile) Sync() error {
	f.gate.pass()
	return f.File.Sync()
}

func (g gatedFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return gatedFile{File: f, gate: g.gate}, nil
}

func (g gatedFS) Create(name string) (vfs.File, error)     { return g.wrap(g.FS.Create(name)) }
func (g gatedFS) OpenAppend(name string) (vfs.File, error) { return g.wrap(g.FS.OpenAppend(name)) }
func (g gatedFS) Open(name string) (vfs.File, error)       { return g.wrap(g.FS.Open(name)) }

// TestReadsWaitForDurableStreamState: metadata and a deletion written but
// not yet durable change nothing a reader sees — a crash could take them
// back — and are seen once their sync completes.
func TestReadsWaitForDurableStreamState(t *testing.T) {
	gate := newSyncGate()
	n := startNodeFS(t, gatedFS{FS: vfs.Default(), gate: gate})
	ctx := ctxT(t)
	for i := range 10 {
		n.mustAppend(ctx, "t", "s", nil, ev("E", fmt.Sprint(i)))
	}
	u := func(v uint64) *uint64 { return &v }

	gate.hold()
	written := make(chan error, 1)
	go func() {
		_, err := n.client.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{
			Topic: "t", Stream: "s", Metadata: &eventstorev1.StreamMetadata{MaxCount: u(3)}}))
		written <- err
	}()
	select {
	case <-gate.waiting: // the metadata record is in the log and the index, not durable
	case <-ctx.Done():
		t.Fatal("no sync was attempted after the metadata write")
	}

	// A reader may wait for the sync, never show what it may lose.
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	md, err := n.client.GetStreamMetadata(short(), connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "t", Stream: "s"}))
	if err == nil && md.Msg.GetMetadata().MaxCount != nil {
		t.Errorf("GetStreamMetadata showed max_count %d before it was durable", md.Msg.GetMetadata().GetMaxCount())
	}
	read, err := n.client.ReadStream(short(), connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "t", Stream: "s", MaxCount: 100}))
	if err == nil && len(read.Msg.Events) != 10 {
		t.Errorf("ReadStream applied a max_count that is not durable: revisions %v", revisions(read.Msg.Events))
	}
	topic, err := n.client.ReadTopic(short(), connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "t", MaxCount: 100}))
	if err == nil && len(topic.Msg.Events) != 10 {
		t.Errorf("ReadTopic applied a max_count that is not durable: revisions %v", revisions(topic.Msg.Events))
	}

	gate.release()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	md, err = n.client.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "t", Stream: "s"}))
	if err != nil || md.Msg.GetMetadata().GetMaxCount() != 3 {
		t.Fatalf("durable metadata: %v %v", md, err)
	}
	if got := revisions(n.readAll(ctx, "t", "s")); fmt.Sprint(got) != "[7 8 9]" {
		t.Fatalf("durable max_count 3: %v", got)
	}

	gate.hold()
	go func() {
		_, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "t", Stream: "s"}))
		written <- err
	}()
	select {
	case <-gate.waiting: // the deletion is in the log and the index, not durable
	case <-ctx.Done():
		t.Fatal("no sync was attempted after the deletion")
	}
	md, err = n.client.GetStreamMetadata(short(), connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "t", Stream: "s"}))
	if err == nil && md.Msg.GetSoftDeleted() {
		t.Error("GetStreamMetadata showed a deletion before it was durable")
	}
	read, err = n.client.ReadStream(short(), connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "t", Stream: "s", MaxCount: 100}))
	if err == nil && len(read.Msg.Events) != 3 {
		t.Errorf("ReadStream applied a deletion that is not durable: revisions %v", revisions(read.Msg.Events))
	}
	gate.release()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if got := n.readAll(ctx, "t", "s"); len(got) != 0 {
		t.Fatalf("after the durable deletion: %v", revisions(got))
	}
}
