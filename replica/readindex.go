package replica

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
)

// Linearizable reads (design §6.2, §6.4). A leader that lost its
// leadership without knowing it yet (cut off from the majority, or paused,
// until CheckQuorum makes it step down) would answer from state a new
// leader has moved past. Scheduler.ReadIndex asks raft for a read index
// (ReadOnlySafe: the leader's commit index, confirmed by a heartbeat round
// a quorum answered after the call), then waits until the group applied up
// to it, so the caller reads state at least as new as every write
// acknowledged before its call began.
//
// One round serves every read of a group queued when it starts: reads
// arriving while a round is in flight wait for the next one, since a
// heartbeat round sent before a read began proves nothing about the time
// after it. So a group has at most one round in flight, and a burst of
// reads costs two rounds at most, whatever its size.
//
// A round fails, answering each of its reads, when the replica is not the
// ready leader (ErrNotLeader; also when it stops leading the round's term
// before the round is answered: raft forgets pending reads on any change
// of role), when the replica failed, or when the round is not answered
// within readRoundTicksMax ticks while the replica still leads
// (ErrReadDropped, retriable; raft re-sends the round's context with each
// heartbeat, so only a lost leader keeps it unanswered, and CheckQuorum
// fails that one sooner). A group with a round in flight does not
// quiesce: it needs its ticks for those heartbeats and for CheckQuorum.

// ReadPoint is where a linearizable read may be served: the read index
// (Index) a quorum confirmed this replica's leadership of Term at, which
// the replica has applied.
type ReadPoint struct {
	Index, Term uint64
}

// ErrReadDropped: a read round was not confirmed within readRoundTicksMax
// ticks though the replica still leads; the caller may retry.
var ErrReadDropped = errors.New("replica: read index not confirmed")

// readRoundTicksMax bounds a round's wait for its quorum, in ticks: two
// of the default election timeouts' upper ends, past CheckQuorum's own
// step-down of a leader that hears from no quorum.
const readRoundTicksMax = 4 * defaultElectionTick

// readWaiter is one ReadIndex call waiting for its answer.
type readWaiter struct {
	ctx  context.Context
	done chan readResult // buffered: the answer never blocks a worker
}

type readResult struct {
	point ReadPoint
	err   error
}

func (w readWaiter) answer(point ReadPoint, err error) { w.done <- readResult{point: point, err: err} }

// readRound is a group's ReadIndex in flight. It belongs to the worker
// running the group.
type readRound struct {
	rctx     []byte // unique per scheduler, as raft's readOnly keys rounds by it
	term     uint64
	index    uint64
	answered bool
	ticks    int // ticks the group took since the round started
	waiters  []readWaiter
}

// ReadIndex returns once the group's replica, the ready leader, has had its
// leadership confirmed by a quorum after this call began and has applied up
// to the commit index of that moment: state read from its state machine
// then is linearizable. Concurrent calls share rounds. ErrNotLeader when
// the replica is not (or stops being) the ready leader, ErrReadDropped
// when no quorum answered in time, ctx's error when it ends first. On a
// worker, or the goroutine that steps a Stepped scheduler, it answers
// ErrReentrant: it would wait for itself.
func (s *Scheduler) ReadIndex(ctx context.Context, groupID uint64) (ReadPoint, error) {
	w := readWaiter{ctx: ctx, done: make(chan readResult, 1)}
	g, err := s.lockQueue(groupID, func(g *group) int { return len(g.reads) }, false)
	if err != nil {
		return ReadPoint{}, err
	}
	g.reads = append(g.reads, w)
	// A running group's round belongs to its worker, which looks at the
	// queue when the run ends; a round in flight runs the group again
	// when it ends.
	if !g.running && g.round == nil {
		s.enqueueLocked(g)
	}
	s.mu.Unlock()
	select {
	case res := <-w.done:
		return res.point, res.err
	case <-ctx.Done():
		return ReadPoint{}, ctx.Err()
	}
}

// startRead starts a round for the reads taken from the queue, or answers
// them at once when the replica cannot serve them. On the group's worker,
// with no round in flight.
func (s *Scheduler) startRead(g *group, reads []readWaiter) {
	reads = slices.DeleteFunc(reads, func(w readWaiter) bool { return w.ctx.Err() != nil })
	if len(reads) == 0 {
		return
	}
	r := g.r
	if err := r.Err(); err != nil {
		answerAll(reads, ReadPoint{}, err)
		return
	}
	if !r.readyLeader() {
		answerAll(reads, ReadPoint{}, fmt.Errorf("%w: replica %x of group %d", ErrNotLeader, r.ID(), g.id))
		return
	}
	rctx := binary.BigEndian.AppendUint64(make([]byte, 0, 8), s.readSeq.Add(1))
	g.round = &readRound{rctx: rctx, term: r.leadership.Term, waiters: reads}
	r.ReadIndex(rctx)
}

// settleRead records the answer to the round in flight among states, and
// ends the round when it is answered and applied, or can no longer be.
// On the group's worker, after its Ready was handled.
func (s *Scheduler) settleRead(g *group, states []raft.ReadState) {
	rd := g.round
	if rd == nil {
		return
	}
	for _, rs := range states {
		if bytes.Equal(rs.RequestCtx, rd.rctx) {
			rd.index, rd.answered = rs.Index, true
		}
	}
	r := g.r
	switch {
	case r.Err() != nil:
		s.endRead(g, ReadPoint{}, r.Err())
	case !r.readyLeader() || r.leadership.Term != rd.term:
		s.endRead(g, ReadPoint{}, fmt.Errorf("%w: replica %x of group %d stopped leading term %d before its read was confirmed",
			ErrNotLeader, r.ID(), g.id, rd.term))
	case rd.answered && r.Applied() >= rd.index:
		s.endRead(g, ReadPoint{Index: rd.index, Term: rd.term}, nil)
	case !rd.answered && rd.ticks > readRoundTicksMax:
		s.endRead(g, ReadPoint{}, fmt.Errorf("%w: group %d, no quorum within %d ticks", ErrReadDropped, g.id, rd.ticks))
	}
}

func (s *Scheduler) endRead(g *group, point ReadPoint, err error) {
	answerAll(g.round.waiters, point, err)
	g.round = nil
}

func answerAll(reads []readWaiter, point ReadPoint, err error) {
	for _, w := range reads {
		w.answer(point, err)
	}
}

// failReadsLocked answers every read of a group the scheduler stops
// running (removed, or closed) with err. The round is only touched once
// no worker runs the group.
func (g *group) failReadsLocked(err error) {
	answerAll(g.reads, ReadPoint{}, err)
	g.reads = nil
	if !g.running && g.round != nil {
		answerAll(g.round.waiters, ReadPoint{}, err)
		g.round = nil
	}
}
