package cluster

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/transport"
)

// fakeSnapshots is a snapshot source: group 1's snapshot is (10, 2); a
// read of offset 99 fails; reads wait for release when it is set.
type fakeSnapshots struct {
	entered chan struct{}
	release chan struct{}
	lastMax int
	mu      sync.Mutex
}

func (f *fakeSnapshots) ReadSnapshotData(index, term uint64, offset int64, maxBytes int) (raftlog.SnapshotData, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	f.mu.Lock()
	f.lastMax = maxBytes
	f.mu.Unlock()
	switch {
	case index != 10 || term != 2:
		return raftlog.SnapshotData{}, raftlog.ErrSnapshotChanged
	case offset == 99:
		return raftlog.SnapshotData{}, errors.New("disk on fire")
	}
	return raftlog.SnapshotData{Batches: []byte("batches"), Next: offset + 5}, nil
}

// sentFrames records the chunks sent, by node, on a channel.
type sentFrames chan sentChunk

type sentChunk struct {
	to    uint64
	chunk transport.SnapshotChunk
}

func (s sentFrames) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	if typ != transport.FrameSnapshotChunk {
		return errors.New("not a chunk")
	}
	c, err := transport.ParseSnapshotChunk(payload)
	if err != nil {
		return err
	}
	s <- sentChunk{to: to, chunk: c}
	return nil
}

func (s sentFrames) next(t *testing.T) sentChunk {
	t.Helper()
	select {
	case c := <-s:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no chunk sent")
		return sentChunk{}
	}
}

func newTestSnapshotServer(src *fakeSnapshots, sent sentFrames) *snapshotServer {
	return newSnapshotServer(slog.New(slog.DiscardHandler), sent, func(group uint64) snapshotSource {
		if group == 1 {
			return src
		}
		return nil
	})
}

func readFrame(group, index, term uint64, offset int64, maxBytes uint32) []byte {
	return transport.AppendSnapshotRead(nil, transport.SnapshotRead{Group: group, Index: index, Term: term, Offset: offset, MaxBytes: maxBytes})
}

// TestSnapshotServerAnswers: data with where to continue, the chunk bound
// applied, a changed snapshot, a group without a replica here and a read
// error each get their status; a malformed read gets no answer.
func TestSnapshotServerAnswers(t *testing.T) {
	src, sent := &fakeSnapshots{}, make(sentFrames, 8)
	s := newTestSnapshotServer(src, sent)
	defer s.close()
	for _, c := range []struct {
		name    string
		payload []byte
		status  transport.SnapshotStatus
		next    int64
		data    []byte
	}{
		{"data", readFrame(1, 10, 2, 40, 64<<20), transport.SnapshotOK, 45, []byte("batches")},
		{"changed", readFrame(1, 9, 2, 40, 100), transport.SnapshotChanged, 0, nil},
		{"no replica", readFrame(2, 10, 2, 40, 100), transport.SnapshotUnavailable, 0, nil},
		{"read error", readFrame(1, 10, 2, 99, 100), transport.SnapshotUnavailable, 0, nil},
	} {
		s.handle(3, c.payload)
		got := sent.next(t)
		if got.to != 3 || got.chunk.Status != c.status || got.chunk.Next != c.next || !bytes.Equal(got.chunk.Batches, c.data) {
			t.Errorf("%s: sent %+v to %d, want status %d, next %d, data %q", c.name, got.chunk, got.to, c.status, c.next, c.data)
		}
		if got.chunk.Group == 1 && got.chunk.Offset != 40 && got.chunk.Offset != 99 {
			t.Errorf("%s: the answer does not echo the read: %+v", c.name, got.chunk)
		}
		src.mu.Lock()
		asked := src.lastMax
		src.mu.Unlock()
		if c.name == "data" && asked != snapshotChunkBytesMax {
			t.Errorf("a read of 64 MiB asked the source for %d bytes, want the bound %d", asked, snapshotChunkBytesMax)
		}
	}
	s.handle(3, []byte("short"))
	s.close()
	select {
	case c := <-sent:
		t.Fatalf("answered a malformed read: %+v", c)
	default:
	}
}

// TestSnapshotServerBoundsReadsPerNode: while a node has
// snapshotReadsPerNodeMax reads in progress, its next read is answered
// unavailable at once; another node's is served; close waits for the
// reads in progress and later reads get no answer.
func TestSnapshotServerBoundsReadsPerNode(t *testing.T) {
	src := &fakeSnapshots{entered: make(chan struct{}), release: make(chan struct{})}
	sent := make(sentFrames, 8)
	s := newTestSnapshotServer(src, sent)
	for range snapshotReadsPerNodeMax {
		s.handle(3, readFrame(1, 10, 2, 40, 100))
		<-src.entered
	}
	s.handle(3, readFrame(1, 10, 2, 40, 100))
	if got := sent.next(t); got.to != 3 || got.chunk.Status != transport.SnapshotUnavailable {
		t.Fatalf("read past the bound: %+v to %d, want unavailable to 3", got.chunk, got.to)
	}
	s.handle(4, readFrame(1, 10, 2, 40, 100))
	<-src.entered
	closed := make(chan struct{})
	go func() { s.close(); close(closed) }()
	for range snapshotReadsPerNodeMax + 1 {
		src.release <- struct{}{}
	}
	<-closed
	served := map[uint64]int{}
	for range snapshotReadsPerNodeMax + 1 {
		got := sent.next(t)
		if got.chunk.Status != transport.SnapshotOK {
			t.Fatalf("read in progress answered %+v", got.chunk)
		}
		served[got.to]++
	}
	if served[3] != snapshotReadsPerNodeMax || served[4] != 1 {
		t.Fatalf("served %v, want %d reads of node 3 and 1 of node 4", served, snapshotReadsPerNodeMax)
	}
	s.handle(3, readFrame(1, 10, 2, 40, 100))
	select {
	case c := <-sent:
		t.Fatalf("answered a read after close: %+v", c)
	default:
	}
}
