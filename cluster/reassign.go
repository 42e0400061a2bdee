package cluster

import (
	"context"
	"errors"
	"path"
	"slices"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// Moving a partition's replicas (design §5.4 "Moves"). BeginReassignment
// records the target set in the metadata group. Every node follows it:
// a node in the target opens its replica from the group's bootstrap
// snapshot (startReplica), and a node in neither set closes its replica
// and removes the directory once the move completed (followPlacement).
// The group's leader drives the configuration towards the set it should
// have, the target while a move runs and the replicas otherwise, one step
// at a time (planMove): add each missing replica as a learner, wait until
// every learner is within catchUpEntries of the leader's log, hand the
// leadership to a staying voter when the leader leaves, then one joint
// change (new voters in, old ones out; raft leaves the joint
// configuration by itself), and once the voters are the target it
// proposes CompleteReassignment. The steps are read from the applied
// configuration each time, never remembered, so a new leader carries on
// where the last one stopped, and a cancelled move (the replicas are then
// the set wanted) is undone the same way, joint or not.

// catchUpEntries is how far behind the leader's last index a learner may
// be when it becomes a voter: near enough that the new configuration's
// quorum commits without waiting long for it.
const catchUpEntries = 64

// moveInterval is how often the leader of a moving partition looks at its
// learners' progress, which applies nothing and so wakes nothing.
const moveInterval = 100 * time.Millisecond

// moveKind is what planMove asks the leader to do.
type moveKind int

const (
	moveDone     moveKind = iota // the voters are the wanted set
	moveWait                     // a change is under way or a learner catching up
	moveConf                     // propose cc
	moveTransfer                 // hand the leadership to to
	moveCompact                  // compact the leader's Raft log at its applied index
)

type moveStep struct {
	kind moveKind
	cc   *raftpb.ConfChangeV2
	to   uint64
}

// groupProgress is what planMove reads of a leader's replica.
type groupProgress struct {
	self  uint64
	conf  *raftpb.ConfState
	match map[uint64]uint64 // replica → last index known replicated there
	last  uint64            // the leader's last index
	first uint64            // the first index of the leader's log
	// snapshotMembers are the replicas the leader's snapshot configuration
	// names, read only when a learner needs that snapshot (needsSnapshot).
	snapshotMembers []uint64
}

// needsSnapshot reports whether replica r needs entries the leader's Raft
// log no longer holds, so it can only catch up from the leader's snapshot.
func (g groupProgress) needsSnapshot(r uint64) bool {
	return g.match[r]+1 < g.first
}

// planMove is the next step that takes a group from its configuration
// towards want. Pure.
func planMove(g groupProgress, want []uint64) moveStep {
	cs := g.conf
	if len(cs.GetVotersOutgoing()) > 0 {
		return moveStep{kind: moveWait} // raft leaves a joint configuration by itself
	}
	members := slices.Concat(cs.GetVoters(), cs.GetLearners())
	for _, r := range want {
		if !slices.Contains(members, r) {
			return moveStep{kind: moveConf, cc: single(raftpb.ConfChangeAddLearnerNode, r)}
		}
	}
	for _, r := range cs.GetLearners() {
		if !slices.Contains(want, r) {
			return moveStep{kind: moveConf, cc: single(raftpb.ConfChangeRemoveNode, r)}
		}
	}
	if sameReplicas(cs.GetVoters(), want) {
		return moveStep{kind: moveDone}
	}
	for _, r := range cs.GetLearners() {
		if g.needsSnapshot(r) && !slices.Contains(g.snapshotMembers, r) {
			// Raft ignores a snapshot whose configuration does not name
			// its receiver: the one taken before r's addition never
			// catches r up, a compaction at the applied index does.
			return moveStep{kind: moveCompact}
		}
		// A learner behind the log's start is not near the leader
		// however short the log is: it has yet to install the snapshot.
		if g.needsSnapshot(r) || g.match[r]+catchUpEntries < g.last {
			return moveStep{kind: moveWait}
		}
	}
	if !slices.Contains(want, g.self) {
		if to, ok := transferee(g, want); ok {
			return moveStep{kind: moveTransfer, to: to}
		}
	}
	cc := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionAuto.Enum()}
	for _, r := range cs.GetLearners() {
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(r)})
	}
	for _, r := range cs.GetVoters() {
		if !slices.Contains(want, r) {
			cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(r)})
		}
	}
	return moveStep{kind: moveConf, cc: cc}
}

// transferee is the voter staying in want that is furthest along, when it
// is caught up: a leader that leaves hands over to it before the joint
// change, rather than stepping down and leaving the group to an election.
// With no staying voter (every replica moves) the leader steps down when
// it applies its removal.
func transferee(g groupProgress, want []uint64) (uint64, bool) {
	var best uint64
	for _, r := range g.conf.GetVoters() {
		if r != g.self && slices.Contains(want, r) && (best == 0 || g.match[r] > g.match[best]) {
			best = r
		}
	}
	return best, best != 0 && g.match[best]+catchUpEntries >= g.last
}

func single(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChangeV2 {
	return &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: t.Enum(), NodeId: new(id)}}}
}

// sameReplicas reports whether a and b hold the same replicas.
func sameReplicas(a, b []uint64) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(r uint64) bool { return !slices.Contains(b, r) })
}

// wantedReplicas is the set a partition's group should have: the target
// while a move runs, else the replicas.
func wantedReplicas(p *metav1.Partition) []uint64 {
	if p.ReassignmentId != 0 {
		return p.TargetReplicas
	}
	return p.Replicas
}

// assignedHere reports whether this node holds a replica of mp, as one of
// its replicas or as the target of a move.
func (c *Cluster) assignedHere(mp *metav1.Partition) bool { return c.localReplica(mp) != 0 }

// localReplica is the id of this node's replica of mp (one of its replicas
// or a move's target), 0 when it has none. Its placement may differ from
// that of a replica of mp the node held before (meta/ids.go); of two (a
// damaged replica and the one renewing it) it is the newer.
func (c *Cluster) localReplica(mp *metav1.Partition) uint64 {
	var here []uint64
	for _, r := range slices.Concat(mp.Replicas, mp.TargetReplicas) {
		if c.isSelf(r) {
			here = append(here, r)
		}
	}
	return newestLocal(here)
}

// isSelf reports whether replica is on this node's incarnation, whatever
// its placement.
func (c *Cluster) isSelf(replica uint64) bool { return meta.NodeReplicaID(replica) == c.replicaID() }

// moveLoop drives the moves of the partitions this node leads, asks for
// the renewal of this node's damaged replicas (damaged.go), and on the
// metadata leader removes the draining nodes left with no replica. It
// looks after every metadata apply, and every moveInterval while a group
// here is moving or a damaged replica waits.
func (c *Cluster) moveLoop(ctx context.Context) {
	moving := map[uint64]bool{}
	for {
		var timer env.Timer
		var tick <-chan time.Time
		if len(moving) > 0 || c.hasDamaged() {
			timer = c.env.Clock.NewTimer(moveInterval)
			tick = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-c.metaApplied:
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		c.tendMoves(ctx, moving)
		c.renewDamaged(ctx)
		if err := c.removeDrained(ctx); err != nil && ctx.Err() == nil {
			c.env.Logger.Warn("removing a drained node", "err", err)
		}
		if err := c.refillReplaced(ctx); err != nil && ctx.Err() == nil {
			c.env.Logger.Warn("refilling the replicas of a replaced incarnation", "err", err)
		}
	}
}

// signalMoves wakes moveLoop; it never waits.
func (c *Cluster) signalMoves() {
	select {
	case c.metaApplied <- struct{}{}:
	default:
	}
}

// tendMoves takes one step in every group this node leads that is moving:
// a reassignment runs, or it was moving here before (a cancelled move is
// undone by the same steps). moving keeps the groups whose last step was
// not the last.
func (c *Cluster) tendMoves(ctx context.Context, moving map[uint64]bool) {
	for _, t := range c.ctl.State().Topics {
		for _, p := range t.Partitions {
			if p.ReassignmentId == 0 && !moving[p.GroupId] {
				continue
			}
			delete(moving, p.GroupId)
			if !c.assignedHere(p) {
				continue
			}
			if l := c.leadership(p.GroupId); !l.Ready || !c.isSelf(l.Leader) {
				// Its leader moves it; watched while the move runs, as
				// leadership may come here (a leaving leader hands over).
				if p.ReassignmentId != 0 {
					moving[p.GroupId] = true
				}
				continue
			}
			step, err := c.stepMove(p)
			if err != nil {
				continue // the group left the scheduler or lost its leader: its next leader goes on
			}
			if step.kind == moveCompact {
				// On the partition's writer, which stepMove's worker is:
				// after it, not inside it.
				c.compactForLearner(t, p)
			}
			if c.finishMove(ctx, t, p, step) {
				moving[p.GroupId] = true
			}
		}
	}
}

// stepMove plans and takes the next step of p's group on its worker.
func (c *Cluster) stepMove(p *metav1.Partition) (moveStep, error) {
	var step moveStep
	// Read before the worker runs: the worker never takes mu, which
	// reconcile holds while it waits for a group to leave the scheduler
	// (and a group leaves it before its log closes).
	storage := c.groupStorage(p.GroupId)
	err := c.sched.Do(p.GroupId, func(r *replica.Replica) {
		if l := r.Leadership(); !l.Ready || l.Leader != r.ID() {
			// Never "done": that would complete a move on another
			// replica's behalf. Its leader goes on.
			step = moveStep{kind: moveWait}
			return
		}
		g, err := progressOf(r, storage)
		if err != nil {
			step = moveStep{kind: moveWait}
			return
		}
		step = planMove(g, wantedReplicas(p))
		switch step.kind {
		case moveConf:
			if err := r.ProposeConfChange(step.cc); err != nil && !errors.Is(err, replica.ErrConfChangePending) {
				c.env.Logger.Warn("proposing a partition's configuration change", "group", p.GroupId, "change", step.cc.String(), "err", err)
			}
		case moveTransfer:
			r.TransferLeader(step.to)
		}
	})
	return step, err
}

// progressOf reads a leader's configuration and its replicas' progress.
func progressOf(r *replica.Replica, st replica.Storage) (groupProgress, error) {
	status := r.Status()
	g := groupProgress{self: r.ID(), conf: r.ConfState(), match: map[uint64]uint64{}}
	for id, pr := range status.Progress {
		g.match[id] = pr.Match
	}
	g.last = status.Progress[r.ID()].Match
	if st == nil {
		return g, errors.New("no storage")
	}
	first, err := st.FirstIndex()
	if err != nil {
		return g, err
	}
	g.first = first
	for _, r := range g.conf.GetLearners() {
		if !g.needsSnapshot(r) {
			continue
		}
		snap, err := st.Snapshot()
		if err != nil {
			return g, err
		}
		cs := snap.GetMetadata().GetConfState()
		g.snapshotMembers = slices.Concat(cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext())
		break
	}
	return g, nil
}

// groupStorage is the Raft log of the local replica of group, nil when
// none is open.
func (c *Cluster) groupStorage(group uint64) replica.Storage {
	if p := c.groupPartition(group); p != nil {
		return p.RaftStorage()
	}
	return nil
}

// groupPartition is the local replica of group, nil when none is open.
func (c *Cluster) groupPartition(group uint64) *partition.Partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.topics {
		for _, s := range t.Partitions {
			if s.Group == group && s.Partition != nil && s.Partition.Replicated() {
				return s.Partition
			}
		}
	}
	return nil
}

// compactForLearner compacts the Raft log of the local replica of p's
// group at its applied index, so that the snapshot a learner added after
// the last compaction gets names it (moveCompact).
func (c *Cluster) compactForLearner(t *metav1.Topic, p *metav1.Partition) {
	lp := c.groupPartition(p.GroupId)
	if lp == nil {
		return
	}
	if err := lp.CompactRaftAtApplied(); err != nil {
		c.env.Logger.Warn("compacting a partition's Raft log for a new replica", "topic", t.Name, "partition", p.Index, "err", err)
	}
}

// finishMove proposes to the metadata group the completion of a move
// whose voters are the target. It reports whether the group is still
// moving. Nothing cancels a move here: every step can go on (a learner
// behind the leader's log start installs its snapshot).
func (c *Cluster) finishMove(ctx context.Context, t *metav1.Topic, p *metav1.Partition, step moveStep) bool {
	ref := &metav1.PartitionRef{Topic: t.Name, TopicId: t.Id, Partition: p.Index}
	if step.kind != moveDone || p.ReassignmentId == 0 {
		return step.kind != moveDone
	}
	cmd := &metav1.Command{Command: &metav1.Command_CompleteReassignment{CompleteReassignment: &metav1.CompleteReassignment{
		Partition: ref, ReassignmentId: p.ReassignmentId}}}
	res, err := c.ctl.Propose(ctx, cmd)
	if err == nil {
		err = meta.ResultError(res)
	}
	if err != nil && !errors.Is(err, meta.ErrNoReassignment) && ctx.Err() == nil {
		c.env.Logger.Warn("ending a partition's reassignment", "topic", t.Name, "partition", p.Index, "err", err)
		return true
	}
	return false
}

// removeUnassigned removes this node's replica directory of a partition
// it no longer holds: moved off while the node was down, or just now (its
// replica is closed). Only a directory holding this node's replica of the
// partition's own group is touched, and only by a state at least as new
// as the meta log this node started with (controller.StartIndex). An
// older one (a restart resumes from the last meta snapshot and replays
// the entries after it) may predate the entry that placed the replica
// here: removing it would let the group recreate it empty under the same
// replica id, a voter that forgot its log and its votes, so a majority
// could elect a leader missing acknowledged records. Such a removal waits
// (removeDeferred). Callers hold mu.
func (c *Cluster) removeUnassigned(topic string, mp *metav1.Partition) {
	if c.reconciled < c.ctl.StartIndex() {
		c.removalsDeferred = true
		return
	}
	dir := partitionDirName(topic, mp.Index)
	s, err := raftlog.ReadState(c.env.FS, path.Join(c.cfg.DataDir, dir, raftStateFile))
	if err != nil || s.GroupID != mp.GroupId || meta.NodeOf(s.ReplicaID) != c.cfg.NodeID {
		return
	}
	if err := c.removeReplicaDir(dir); err != nil {
		c.env.Logger.Error("removing the directory of a replica moved off this node", "dir", dir, "err", err)
	}
}

// removeDeferred removes the directories removeUnassigned kept while the
// state was older than the meta log at start, once st is not: the
// partitions st places on other nodes. Callers hold mu.
func (c *Cluster) removeDeferred(st *metav1.State) {
	if !c.removalsDeferred || st.GetAppliedIndex() < c.ctl.StartIndex() {
		return
	}
	c.removalsDeferred = false
	for _, t := range st.Topics {
		for _, mp := range t.Partitions {
			if !c.assignedHere(mp) {
				c.removeUnassigned(t.Name, mp)
			}
		}
	}
}

// placementChanged reports whether a partition of w moved onto or off
// this node, or changed replicas, since cur was built.
func (c *Cluster) placementChanged(cur *Topic, w *metav1.Topic) bool {
	for i, s := range cur.Partitions {
		if i >= len(w.Partitions) {
			break
		}
		mp := w.Partitions[i]
		if !slices.Equal(s.Replicas, c.replicaNodes(mp.Replicas)) || (c.cfg.clustered() && c.assignedHere(mp) == isNoReplica(s)) || c.reopens(s, mp) {
			return true
		}
	}
	return false
}

// reopens reports whether slot s, holding or waiting for a replica of mp
// here, is to be opened again: mp places another replica id here (moved
// off and back: a new member), or s waited for a state as new as this one.
// Callers hold mu.
func (c *Cluster) reopens(s *PartitionSlot, mp *metav1.Partition) bool {
	if !c.cfg.clustered() || isNoReplica(s) {
		return false
	}
	rid := c.localReplica(mp)
	return rid != 0 && (s.replicaID != rid || errors.Is(s.Offline, errReplicaWaits) && c.reconciled >= c.ctl.StartIndex())
}

// followPlacement is cur's slots as w places them: a replica opened where
// a move adds this node, reopened where it comes back under a new id,
// closed and removed where the node left the partition, and the replica
// lists refreshed. It returns how many it
// opened. Callers hold mu.
func (c *Cluster) followPlacement(cur *Topic, w *metav1.Topic, cfg partition.Config) ([]*PartitionSlot, int) {
	out := make([]*PartitionSlot, len(cur.Partitions))
	opened := 0
	for i, s := range cur.Partitions {
		mp := w.Partitions[i]
		switch want := c.cfg.clustered() && c.assignedHere(mp); {
		case want && c.reopens(s, mp):
			if err := c.closeSlot(s); err != nil {
				c.env.Logger.Warn("closing a replica to reopen it", "topic", w.Name, "partition", mp.Index, "err", err)
			}
			out[i] = c.openSlot(w.Name, mp, cfg)
			opened++
		case !c.cfg.clustered() || want != isNoReplica(s):
			next := *s
			next.Replicas = c.replicaNodes(mp.Replicas)
			out[i] = &next
		case want:
			out[i] = c.openSlot(w.Name, mp, cfg)
			opened++
		default:
			if err := c.closeSlot(s); err != nil {
				c.env.Logger.Warn("closing a replica moved off this node", "topic", w.Name, "partition", mp.Index, "err", err)
			}
			out[i] = c.openSlot(w.Name, mp, cfg) // no replica here: removes the directory
		}
	}
	return out, opened
}
