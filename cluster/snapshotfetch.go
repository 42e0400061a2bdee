package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

const (
	// snapshotCopiesMax bounds the copies a node runs at once (each holds
	// a goroutine, a staging file and up to one chunk in memory). A
	// snapshot arriving past the bound is dropped: its leader sends it
	// again.
	snapshotCopiesMax = 4
	// snapshotReadTimeoutMax bounds how long a copy waits for the answer
	// to a SnapshotRead before asking again (a chunk lost with its
	// connection); snapshotReadTimeoutFor gives the wait of a cluster.
	snapshotReadTimeoutMax = 5 * time.Second
	// snapshotRetryDelay is the pause before asking again after an
	// "unavailable" answer or a failed send.
	snapshotRetryDelay = 200 * time.Millisecond
	// snapshotFailuresMax ends a copy after this many reads in a row went
	// unanswered or unserved; what it copied stays staged, and the next
	// time the leader sends the snapshot the copy resumes.
	snapshotFailuresMax = 10
	// snapshotInstallWaitMax bounds how long a snapshot Raft took keeps
	// its staged copy from being replaced (awaitInstall): Raft installs
	// it at the replica's next Ready, so only a replica that stopped
	// waits that long. snapshotInstallPoll is how often the wait looks.
	snapshotInstallWaitMax = 30 * time.Second
	snapshotInstallPoll    = 10 * time.Millisecond
)

// snapshotTarget is what a copy is made for: a local replica's partition.
type snapshotTarget interface {
	SnapshotCopyWanted(snap *raftpb.Snapshot) (raftlog.StagedSnapshot, bool)
	OpenSnapshotCopy(s raftlog.StagedSnapshot) (*raftlog.Staging, error)
}

// snapshotFetcher is a follower's side of the copy of the data below a
// leader's snapshot (design §2.2): a MsgSnap whose descriptor has data
// below its next offset is held back from the replica, the data is copied
// from the sender's node with SnapshotRead frames into the replica's
// staging directory on a goroutine of the copy's own, and then the MsgSnap
// is delivered, so the Raft log installs the snapshot with that data.
// Raft's leader counts the snapshot as sent when it hands it to the
// network (replica.SnapshotsSent) and probes again; the follower, not
// having stepped it, rejects the probes, so the leader sends the snapshot
// again: a copy of that snapshot in progress drops it, another snapshot
// stops the copy (and is dropped: the next one sent starts a new copy).
// A copy that fails ends; the leader's next send starts it again,
// resuming from what was staged. A copy delivered stays until the replica
// installed its snapshot (or no longer can): a copy of another snapshot
// replaces the staged one, and Raft installing the delivered snapshot
// after that would restart the log at its next offset without the data
// below it (awaitInstall).
type snapshotFetcher struct {
	clock  env.Clock
	logger *slog.Logger
	send   frameSender
	// target finds the group's local replica, nil when there is none. It
	// may take the cluster's lock: called on a copy's goroutine only.
	target func(group uint64) snapshotTarget
	// deliver steps the snapshot into the group's replica once copied,
	// on its worker, and says whether Raft took it (it installs it at
	// its next Ready) rather than dropped it. t is the target the copy
	// was decided for: a replica that replaced it since is not stepped.
	deliver func(group uint64, t snapshotTarget, m *raftpb.Message) bool
	// readTimeout is how long a copy waits for a read's answer before
	// asking again.
	readTimeout time.Duration

	mu     sync.Mutex
	copies map[uint64]*snapshotCopy // by group
	closed bool
	wg     sync.WaitGroup
}

// snapshotCopy is one copy in progress.
type snapshotCopy struct {
	group, from uint64 // the group, the node that sent the snapshot
	index, term uint64
	msg         *raftpb.Message
	chunks      chan transport.SnapshotChunk
	stop        chan struct{}
	stopped     bool // stop closed; guarded by the fetcher's mu
	// delivered: the copy is complete and its snapshot went to the
	// replica, which has not installed it yet; guarded by the fetcher's mu.
	delivered bool
}

func newSnapshotFetcher(clock env.Clock, logger *slog.Logger, send frameSender, target func(group uint64) snapshotTarget,
	deliver func(group uint64, t snapshotTarget, m *raftpb.Message) bool, readTimeout time.Duration) *snapshotFetcher {
	return &snapshotFetcher{clock: clock, logger: logger, send: send, target: target, deliver: deliver,
		readTimeout: readTimeout, copies: map[uint64]*snapshotCopy{}}
}

// snapshotReadTimeoutFor is how long a copy waits for a read's answer in
// a cluster of that election timeout: three of them, 100 ms at least and
// snapshotReadTimeoutMax at most. A chunk is read in milliseconds; a lost
// answer (its connection lost, or a frame dropped by a simulated network)
// held the copy, and so a follower needed for a majority, 5 s at first,
// longer than ten election timeouts (TestSimulatedClusterCompacted,
// "cut a synced tail": 4 of 80 seeds made no progress within them).
func snapshotReadTimeoutFor(election time.Duration) time.Duration {
	return min(max(3*election, 100*time.Millisecond), snapshotReadTimeoutMax)
}

// intercept is called with each Raft message from node from for group
// before it is delivered: true when the fetcher took it (a copy started or
// runs, or the message is dropped), false when it goes to the replica
// now. It never waits: it runs on the transport's reader.
func (f *snapshotFetcher) intercept(from, group uint64, m *raftpb.Message) bool {
	// The metadata group's snapshots carry its whole state in band.
	if m.GetType() != raftpb.MsgSnap || group == controller.GroupID || !hasDataBelow(m.GetSnapshot()) {
		return false
	}
	md := m.GetSnapshot().GetMetadata()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return true
	}
	if cp, ok := f.copies[group]; ok {
		if !cp.delivered && (cp.index != md.GetIndex() || cp.term != md.GetTerm()) {
			f.stopLocked(cp)
		}
		return true
	}
	if len(f.copies) >= snapshotCopiesMax {
		return true
	}
	cp := &snapshotCopy{group: group, from: from, index: md.GetIndex(), term: md.GetTerm(), msg: m,
		chunks: make(chan transport.SnapshotChunk, 1), stop: make(chan struct{})}
	f.copies[group] = cp
	f.wg.Add(1)
	go f.run(cp)
	return true
}

// hasDataBelow says the snapshot's descriptor has data below its next
// offset; a snapshot without one goes to the replica (which judges it).
func hasDataBelow(snap *raftpb.Snapshot) bool {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	return err == nil && d.LogStartOffset < d.NextOffset
}

func (f *snapshotFetcher) stopLocked(cp *snapshotCopy) {
	if !cp.stopped {
		cp.stopped = true
		close(cp.stop)
	}
}

// handleChunk is the transport's FrameSnapshotChunk handler: it hands the
// chunk to the copy that asked (a chunk nobody waits for is dropped).
func (f *snapshotFetcher) handleChunk(from uint64, payload []byte) {
	c, err := transport.ParseSnapshotChunk(payload)
	if err != nil {
		f.logger.Warn("dropped a snapshot chunk", "from", from, "err", err)
		return
	}
	f.mu.Lock()
	cp, ok := f.copies[c.Group]
	f.mu.Unlock()
	if !ok || cp.from != from || cp.index != c.Index || cp.term != c.Term {
		return
	}
	c.Batches = bytes.Clone(c.Batches) // the payload is valid only during the call
	select {
	case cp.chunks <- c:
	default: // an answer to an earlier read is still waiting: this one is late
	}
}

// run makes one copy and then delivers the snapshot.
func (f *snapshotFetcher) run(cp *snapshotCopy) {
	defer f.wg.Done()
	defer f.forget(cp)
	t := f.target(cp.group)
	if t == nil {
		// No partition here to copy for: dropped, not delivered, since a
		// replica running meanwhile would install it with nothing below
		// (its leader sends it again).
		f.logger.Debug("dropped a snapshot for a group with no open replica here", "group", cp.group, "index", cp.index)
		return
	}
	staged, wanted := t.SnapshotCopyWanted(cp.msg.GetSnapshot())
	if !wanted {
		f.deliver(cp.group, t, cp.msg)
		return
	}
	if err := f.copyInto(cp, t, staged); err != nil {
		f.logger.Info("snapshot copy ended", "group", cp.group, "index", cp.index, "from", cp.from, "err", err)
		return
	}
	f.mu.Lock()
	cp.delivered = true
	f.mu.Unlock()
	if f.deliver(cp.group, t, cp.msg) {
		f.awaitInstall(cp, t)
	}
}

// awaitInstall waits until the replica installed the snapshot Raft took
// (its Raft log holds a snapshot at or past it: SnapshotCopyWanted says
// no), so that no copy of another snapshot replaces the staged data
// meanwhile: the intercepted snapshots of the group are dropped until
// then (their leader sends again). The wait ends too when the replica was
// replaced, the fetcher closes, or after snapshotInstallWaitMax.
func (f *snapshotFetcher) awaitInstall(cp *snapshotCopy, t snapshotTarget) {
	snap := cp.msg.GetSnapshot()
	for waited := time.Duration(0); waited < snapshotInstallWaitMax; waited += snapshotInstallPoll {
		if _, wanted := t.SnapshotCopyWanted(snap); !wanted || f.target(cp.group) != t {
			return
		}
		if !f.pause(cp, snapshotInstallPoll) {
			return
		}
	}
	f.logger.Warn("a delivered snapshot was not installed; a copy of another may replace its data", "group", cp.group, "index", cp.index, "waited", snapshotInstallWaitMax)
}

func (f *snapshotFetcher) forget(cp *snapshotCopy) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.copies[cp.group] == cp {
		delete(f.copies, cp.group)
	}
}

// Why a copy ends before it is complete.
var (
	errCopyStopped = errors.New("stopped")
	errCopyChanged = errors.New("the sender's snapshot changed")
	errCopyFailing = errors.New("reads unanswered or unserved")
)

// copyInto copies the data below the snapshot into the staging directory
// and marks it complete.
func (f *snapshotFetcher) copyInto(cp *snapshotCopy, t snapshotTarget, staged raftlog.StagedSnapshot) (err error) {
	staged.Sender = cp.from // a copy half made from another node starts again
	s, err := t.OpenSnapshotCopy(staged)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := s.Close(); err == nil {
			err = closeErr
		}
	}()
	for failures := 0; !s.Done(); {
		if failures >= snapshotFailuresMax {
			return fmt.Errorf("at offset %d: %w", s.Next(), errCopyFailing)
		}
		c, err := f.read(cp, s.Next())
		switch {
		case errors.Is(err, errCopyStopped):
			return err
		case err != nil:
			failures++
			continue
		case c.Status == transport.SnapshotChanged:
			return errCopyChanged
		case c.Status != transport.SnapshotOK:
			failures++
			if !f.pause(cp, snapshotRetryDelay) {
				return errCopyStopped
			}
			continue
		}
		if err := s.Add(c.Batches, c.Next); err != nil {
			return err
		}
		failures = 0
	}
	return s.Complete()
}

// errNoAnswer: a read went unanswered (or could not be sent).
var errNoAnswer = errors.New("no answer")

// read asks the sender for the data at offset and waits for the answer.
func (f *snapshotFetcher) read(cp *snapshotCopy, offset int64) (transport.SnapshotChunk, error) {
	req := transport.SnapshotRead{Group: cp.group, Index: cp.index, Term: cp.term, Offset: offset, MaxBytes: snapshotChunkBytesMax}
	if err := f.send.SendFrame(cp.from, transport.FrameSnapshotRead, transport.AppendSnapshotRead(nil, req)); err != nil {
		if !f.pause(cp, snapshotRetryDelay) {
			return transport.SnapshotChunk{}, errCopyStopped
		}
		return transport.SnapshotChunk{}, errNoAnswer
	}
	timer := f.clock.NewTimer(f.readTimeout)
	defer timer.Stop()
	for {
		select {
		case c := <-cp.chunks:
			if c.Offset == offset {
				return c, nil
			}
		case <-timer.C():
			return transport.SnapshotChunk{}, errNoAnswer
		case <-cp.stop:
			return transport.SnapshotChunk{}, errCopyStopped
		}
	}
}

// pause waits d; false when the copy was stopped meanwhile.
func (f *snapshotFetcher) pause(cp *snapshotCopy, d time.Duration) bool {
	timer := f.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-cp.stop:
		return false
	}
}

// close stops the copies and waits for them.
func (f *snapshotFetcher) close() {
	f.mu.Lock()
	f.closed = true
	for _, cp := range f.copies {
		f.stopLocked(cp)
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// snapshotTargetOf is the fetcher's target: this node's open replica of
// group, nil when there is none. It takes mu, so it runs on a copy's
// goroutine, never on the transport's reader.
func (c *Cluster) snapshotTargetOf(group uint64) snapshotTarget {
	t, _ := c.snapshotSourceOf(group).(snapshotTarget) // a partition, or nil
	return t
}

// deliver queues a Raft message for its group on the scheduler, once
// there is one.
func (c *Cluster) deliver(group uint64, m *raftpb.Message) {
	if s := c.deliverTo.Load(); s != nil {
		s.Deliver(group, m)
	}
}

// stepSnapshot steps a MsgSnap into its group's replica on the
// scheduler's worker and says whether Raft took it: its commit index
// reached the snapshot's (a snapshot past it restores; one of an older
// term, or not naming the replica, is dropped). Stepped rather than
// queued, the fetcher knows when the staged copy may go: a snapshot left
// in a queue while another copy replaced its data would install with
// nothing below it.
//
// Only into the replica of partition t, which the fetcher asked whether
// it wants a copy: a replica that replaced it since (a move back or a
// renewal reopening the slot) has another log, which may need the copy
// the first did not.
func (c *Cluster) stepSnapshot(group uint64, t snapshotTarget, m *raftpb.Message) bool {
	s := c.deliverTo.Load()
	if s == nil {
		return false
	}
	rid := c.replicaIDOf(group, t)
	if rid == 0 {
		return false
	}
	index := m.GetSnapshot().GetMetadata().GetIndex()
	taken := false
	err := s.Do(group, func(r *replica.Replica) {
		if r.ID() != rid {
			return
		}
		if err := r.Step(m); err == nil {
			taken = r.Status().GetCommit() >= index
		}
	})
	return err == nil && taken
}

// replicaIDOf is the id of the replica partition t of group runs here, 0
// when no open slot holds t.
func (c *Cluster) replicaIDOf(group uint64, t snapshotTarget) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.replicaSlotLocked(group); s != nil && snapshotTarget(s.Partition) == t {
		return s.replicaID
	}
	return 0
}
