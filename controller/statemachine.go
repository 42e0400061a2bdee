package controller

import (
	"fmt"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// stateMachine is the Controller as the meta replica's
// replica.StateMachine; its methods run on the group's worker.
type stateMachine Controller

var _ replica.StateMachine = (*stateMachine)(nil)

// Apply applies committed entries to the machine and answers the local
// proposals waiting for them.
func (s *stateMachine) Apply(ents []*raftpb.Entry) error {
	c := (*Controller)(s)
	c.mu.Lock()
	for _, e := range ents {
		if err := c.applyEntryLocked(e); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	applied := c.applied
	close(c.changed)
	c.changed = make(chan struct{})
	// A configuration change too: the meta log stores no commit index, so
	// a restart takes the configuration of the last snapshot, and a node
	// that applied a promotion since came back without it (seeds 93, 138:
	// holding the longest log, it asked only the old voters, one of them
	// cut off, and no leader was elected).
	due := applied-c.snapshotIndex >= c.cfg.SnapshotEntries || slices.ContainsFunc(ents, isConfChange)
	c.mu.Unlock()
	if due {
		select {
		case c.snapshotDue <- struct{}{}:
		default: // one is pending already
		}
	}
	select {
	case c.memberDue <- struct{}{}:
	default:
	}
	if applied > bootstrapIndex {
		c.cfg.Probe.set(answerExists)
	}
	if c.cfg.OnApplied != nil {
		c.cfg.OnApplied(applied)
	}
	return nil
}

// applyEntryLocked applies one entry: a command, or nil for raft's empty
// and configuration entries, which only advance the applied index.
func (c *Controller) applyEntryLocked(e *raftpb.Entry) error {
	idx := e.GetIndex()
	c.applied = max(c.applied, idx)
	if idx <= c.machine.AppliedIndex() {
		// The state came from a meta-snapshot file past the durable commit
		// index the replica started from: it holds this entry already.
		return nil
	}
	if e.GetType() != raftpb.EntryNormal || len(e.GetData()) == 0 {
		c.resolveLocked(idx, e.GetTerm(), c.machine.Apply(idx, nil))
		return nil
	}
	h, value, err := decodeEntry(e.GetData())
	if err != nil {
		return fmt.Errorf("controller: entry %d: %w", idx, err)
	}
	// Offsets follow each other without gaps in the meta log; another
	// base offset means a leader stamped it from a wrong count.
	if h.BaseOffset != c.appliedNext {
		return fmt.Errorf("controller: %w: entry %d at offset %d, expected %d", errBadEntry, idx, h.BaseOffset, c.appliedNext)
	}
	c.appliedNext = h.NextOffset()
	c.resolveLocked(idx, e.GetTerm(), c.applyCommandLocked(idx, value))
	return nil
}

// applyCommandLocked applies the command an entry carries. One that does
// not decode (proposals are checked first, so only a leader that did not
// check commits one) is refused alike on every node: failing the replica
// instead would fail it again at every replay, on every node, for good.
func (c *Controller) applyCommandLocked(idx uint64, value []byte) *metav1.Result {
	cmd, err := meta.DecodeCommand(value)
	if err == nil {
		return c.machine.Apply(idx, cmd)
	}
	c.e.Logger.Warn("controller: refused an entry whose command does not decode", "index", idx, "err", err)
	c.machine.Apply(idx, nil) // only advances the applied index
	return &metav1.Result{Code: metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, Message: fmt.Sprintf("entry %d: the command does not decode", idx)}
}

// resolveLocked answers the proposal waiting at idx: its result when the
// entry is the one it proposed (same term), lost otherwise. An entry of a
// later term also dooms every proposal of an earlier term still waiting:
// terms never decrease along the log, so none of them can commit after it.
func (c *Controller) resolveLocked(idx, term uint64, res *metav1.Result) {
	if w, ok := c.waiters[idx]; ok {
		delete(c.waiters, idx)
		if w.term == term {
			w.done <- waitResult{result: res}
		} else {
			w.done <- waitResult{err: errLost}
		}
	}
	if term <= c.appliedTerm {
		return
	}
	c.appliedTerm = term
	for i, w := range c.waiters {
		if w.term < term {
			delete(c.waiters, i)
			w.done <- waitResult{err: errLost}
		}
	}
}

// LeadershipChanged records the leader and wakes the proposers waiting
// for one.
func (s *stateMachine) LeadershipChanged(l replica.Leadership) {
	c := (*Controller)(s)
	if l.Term > bootstrapTerm { // a quorum pre-voted past the bootstrap (pastBootstrap)
		c.cfg.Probe.set(answerExists)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leadership = l
	close(c.leaderMoved)
	c.leaderMoved = make(chan struct{})
}

// PrepareProposal wraps a command into its batch, stamped with the next
// offset and the term. A ready leader has applied every entry before its
// term, so its first proposal of a term follows the applied offset, and
// each later one the previous proposal (dropped ones are taken back by
// proposeLocal).
func (s *stateMachine) PrepareProposal(p *replica.Proposal, at replica.ProposalPoint) error {
	c := (*Controller)(s)
	if at.Term != c.prepTerm {
		c.mu.Lock()
		c.prepTerm, c.prepNext = at.Term, c.appliedNext
		c.mu.Unlock()
	}
	data, err := encodeEntry(p.Data, c.prepNext, at.Term, c.e.Clock.Now().UnixMilli())
	if err != nil {
		return err
	}
	p.Data = data
	c.prepNext++
	return nil
}

// Restore replaces the state by a snapshot the leader sent. Proposals
// waiting at or below it cannot tell whether theirs was applied.
func (s *stateMachine) Restore(snap *raftpb.Snapshot) error {
	c := (*Controller)(s)
	data, err := c.snapshotState(snap)
	if err != nil {
		return fmt.Errorf("controller: restore at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	next, st, err := decodeMetaState(data)
	if err != nil {
		return fmt.Errorf("controller: restore at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	m, err := meta.New(st.state)
	if err != nil {
		return fmt.Errorf("controller: restore at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	idx, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.machine, c.appliedNext, c.applied = m, next, idx
	c.restores++
	for i, w := range c.waiters {
		if i <= idx {
			delete(c.waiters, i)
			w.done <- waitResult{err: fmt.Errorf("%w: jumped to a snapshot at %d", ErrTimeout, idx)}
		}
	}
	c.resolveLocked(0, term, nil)
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

func isConfChange(e *raftpb.Entry) bool {
	t := e.GetType()
	return t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2
}

// LogLost implements replica.LogLoser: the metadata log lost entries it had
// acknowledged, or holds damaged ones found when read. This node's replica
// of the metadata group has stopped, so its view of the cluster no longer
// moves; the metadata log is not renewed as a partition's is.
func (s *stateMachine) LogLost(err error) {
	(*Controller)(s).e.Logger.Error("metadata log damaged: this node's metadata replica stopped; "+
		"stop the node and wipe its data directory, and it rejoins under a new incarnation", "err", err)
}
