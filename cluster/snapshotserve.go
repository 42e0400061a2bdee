package cluster

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/transport"
)

const (
	// snapshotReadsPerNodeMax bounds the snapshot reads served to one node
	// at once (each reads up to snapshotChunkBytesMax from the disk and
	// queues it on the node's connection): a node catching up many groups
	// by snapshot does not crowd out the Raft traffic it shares the
	// connection with. A read past the bound is answered
	// SnapshotUnavailable and asked again.
	snapshotReadsPerNodeMax = 2
	// snapshotChunkBytesMax bounds the data of one SnapshotChunk, whatever
	// the read asked (its first batch is always sent whole).
	snapshotChunkBytesMax = 1 << 20
)

// snapshotSource is what a snapshot read is served from: a local replica's
// partition (partition.Partition.ReadSnapshotData).
type snapshotSource interface {
	ReadSnapshotData(index, term uint64, offset int64, maxBytes int) (raftlog.SnapshotData, error)
}

// frameSender sends a frame to a node (the transport).
type frameSender interface {
	SendFrame(to uint64, typ transport.FrameType, payload []byte) error
}

// snapshotServer answers the SnapshotRead frames of followers copying the
// data below a snapshot of a group with a replica here (design §2.2,
// §3.6). The transport's reader hands it the frames; each read runs on a
// goroutine of its own, at most snapshotReadsPerNodeMax per asking node,
// so the reader never waits on the disk. close joins them.
type snapshotServer struct {
	source func(group uint64) snapshotSource // nil: no replica of group here
	send   frameSender
	logger *slog.Logger

	mu     sync.Mutex
	busy   map[uint64]int // asking node → reads in progress
	closed bool
	wg     sync.WaitGroup
}

func newSnapshotServer(logger *slog.Logger, send frameSender, source func(group uint64) snapshotSource) *snapshotServer {
	return &snapshotServer{source: source, send: send, logger: logger, busy: map[uint64]int{}}
}

// handle is the transport's FrameSnapshotRead handler.
func (s *snapshotServer) handle(from uint64, payload []byte) {
	req, err := transport.ParseSnapshotRead(payload)
	if err != nil {
		s.logger.Warn("dropped a snapshot read", "from", from, "err", err)
		return
	}
	ok, closed := s.acquire(from)
	switch {
	case closed:
		return
	case !ok:
		s.reply(from, answer(req, transport.SnapshotUnavailable))
		return
	}
	go func() {
		defer s.wg.Done()
		defer s.release(from)
		s.reply(from, s.serve(req))
	}()
}

// acquire takes one of from's read slots (and counts the goroutine that
// will use it): false when from has none left or the server is closed.
func (s *snapshotServer) acquire(from uint64) (ok, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, true
	}
	if s.busy[from] >= snapshotReadsPerNodeMax {
		return false, false
	}
	s.busy[from]++
	s.wg.Add(1)
	return true, false
}

func (s *snapshotServer) release(from uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[from]--; s.busy[from] == 0 {
		delete(s.busy, from)
	}
}

// serve reads the data a SnapshotRead asks for.
func (s *snapshotServer) serve(req transport.SnapshotRead) transport.SnapshotChunk {
	src := s.source(req.Group)
	if src == nil {
		return answer(req, transport.SnapshotUnavailable)
	}
	d, err := src.ReadSnapshotData(req.Index, req.Term, req.Offset, min(int(req.MaxBytes), snapshotChunkBytesMax))
	switch {
	case errors.Is(err, raftlog.ErrSnapshotChanged):
		return answer(req, transport.SnapshotChanged)
	case err != nil:
		s.logger.Warn("serving a snapshot read", "group", req.Group, "offset", req.Offset, "err", err)
		return answer(req, transport.SnapshotUnavailable)
	}
	c := answer(req, transport.SnapshotOK)
	c.Next, c.Batches = d.Next, d.Batches
	return c
}

// answer is the chunk answering req with status and no data.
func answer(req transport.SnapshotRead, status transport.SnapshotStatus) transport.SnapshotChunk {
	return transport.SnapshotChunk{Group: req.Group, Index: req.Index, Term: req.Term, Offset: req.Offset, Status: status}
}

// reply sends c; a chunk lost with its connection is asked for again.
func (s *snapshotServer) reply(to uint64, c transport.SnapshotChunk) {
	if err := s.send.SendFrame(to, transport.FrameSnapshotChunk, transport.AppendSnapshotChunk(nil, c)); err != nil {
		s.logger.Debug("snapshot chunk not sent", "to", to, "group", c.Group, "err", err)
	}
}

// close stops serving and waits for the reads in progress.
func (s *snapshotServer) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// snapshotSourceOf is the snapshot server's source: this node's open
// replica of group, nil when there is none. It takes mu (held while
// partitions open), so it runs on a read's own goroutine, never on the
// transport's reader.
func (c *Cluster) snapshotSourceOf(group uint64) snapshotSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.replicaSlotLocked(group); s != nil {
		return s.Partition
	}
	return nil
}

// replicaSlotLocked is the slot of group's open replica here, nil when
// there is none. Callers hold mu.
func (c *Cluster) replicaSlotLocked(group uint64) *PartitionSlot {
	for _, t := range c.topics {
		for _, s := range t.Partitions {
			if s.Group == group && s.Partition != nil && s.Partition.Replicated() {
				return s
			}
		}
	}
	return nil
}
