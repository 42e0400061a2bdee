package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/replica"
)

// ReadIndexer confirms the partition's replica is still the ready leader,
// with a quorum heard after the call, and returns once it has applied up
// to that moment's commit index (replica.Scheduler.ReadIndex on a node).
type ReadIndexer func(ctx context.Context) (replica.ReadPoint, error)

// SchedulerReadIndex reaches the read index of group on a node's
// Scheduler.
func SchedulerReadIndex(s *replica.Scheduler, group uint64) ReadIndexer {
	return func(ctx context.Context) (replica.ReadPoint, error) { return s.ReadIndex(ctx, group) }
}

// ErrNoReadIndex: a replicated partition opened without a ReadIndexer
// (ReplicaConfig.ReadIndex) cannot serve a linearizable read.
var ErrNoReadIndex = errors.New("replicated partition has no read index")

// Linearize makes what the partition reads next linearizable: on a
// replicated partition it returns once its replica, the ready leader of
// the returned leader epoch (the Raft term), has had that leadership
// confirmed by a quorum after the call began and has applied every entry
// committed by then, so a read after it sees every write acknowledged
// before the call, whichever leader took it. A replica that is not, or
// stops being, the ready leader answers ErrNotLeader. A single-writer
// partition is its own authority: it answers its leader epoch at once.
//
// A leader cut off from the majority, or paused, that has not stepped down
// yet blocks here until CheckQuorum deposes it (then ErrNotLeader), rather
// than serving state a new leader has moved past.
func (p *Partition) Linearize(ctx context.Context) (int32, error) {
	if p.repl == nil {
		return p.LeaderEpoch(), nil
	}
	if p.repl.readIndex == nil {
		return 0, fmt.Errorf("%s-%d: %w", p.topic, p.index, ErrNoReadIndex)
	}
	point, err := p.repl.readIndex(ctx)
	switch {
	case errors.Is(err, replica.ErrNotLeader):
		return 0, fmt.Errorf("%w: %s-%d: %v", ErrNotLeader, p.topic, p.index, err)
	case err != nil:
		return 0, fmt.Errorf("%s-%d: linearize a read: %w", p.topic, p.index, err)
	}
	return int32(min(point.Term, maxEpoch)), nil
}
