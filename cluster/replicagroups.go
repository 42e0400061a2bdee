package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// On a cluster node each partition with a replica here is a replicated
// partition (partition.OpenReplica) whose group runs on the node's
// scheduler; a partition with none has a slot with no Partition, Offline
// wrapping ErrNotLeader. A single node keeps the single-writer partitions.

// openSlot opens partition mp of topic as this node holds it.
func (c *Cluster) openSlot(topic string, mp *metav1.Partition, cfg partition.Config) *PartitionSlot {
	var slot *PartitionSlot
	switch {
	case !c.cfg.clustered():
		slot = c.openPartition(topic, mp.Index, cfg)
	case c.assignedHere(mp):
		slot = c.openReplica(topic, mp, cfg)
	default:
		c.removeUnassigned(topic, mp)
		slot = &PartitionSlot{Index: mp.Index, Offline: errNoReplica(topic, mp.Index)}
	}
	slot.Group, slot.Replicas = mp.GroupId, c.replicaNodes(mp.Replicas)
	return slot
}

// openReplica opens this node's replica of mp, or an offline slot saying
// why it could not.
func (c *Cluster) openReplica(topic string, mp *metav1.Partition, cfg partition.Config) *PartitionSlot {
	rid := c.localReplica(mp)
	p, err := c.startReplica(topic, mp, rid, cfg)
	if err != nil {
		switch {
		case errors.Is(err, errReplicaWaits):
			c.env.Logger.Info("partition waits for the metadata log", "topic", topic, "partition", mp.Index, "group", mp.GroupId, "replica", rid, "err", err)
		case partition.StoredBytesInvalid(err): // damaged files
			c.noteDamaged(topic, mp.Index, mp.GroupId, rid, err)
		default:
			c.env.Logger.Error("partition offline", "topic", topic, "partition", mp.Index, "group", mp.GroupId, "err", err)
		}
		return &PartitionSlot{Index: mp.Index, Offline: fmt.Errorf("%w: %w", ErrPartitionOffline, err), replicaID: rid}
	}
	return &PartitionSlot{Index: mp.Index, Partition: p, replicaID: rid}
}

// errReplicaWaits: a replica is not opened from a metadata state older
// than this node's data (a restart replays the meta log from its last
// snapshot), lest it run an id whose directory a newer state removed (an
// empty voter that forgot its votes and log) or take a newer placement's
// directory for stale. It opens once the state has caught up.
var errReplicaWaits = errors.New("the applied metadata state is older than this node's data")

// startReplica opens the partition's directory as its group's Raft log
// and state machine and adds the group to the scheduler. A new replica's
// log starts from the bootstrap snapshot every replica of the group
// derives alike from the placement (index 1, term 1, voters = the
// group's first replicas), so none needs an entry of its own; the
// preferred leader of a new group campaigns at once rather than after an
// election timeout. A replica a move adds starts from the same snapshot:
// it is not among those voters, so it never campaigns, and it learns its
// own addition from the leader's log (reassign.go). A replica moved back
// to a node it left has a new id (its placement, meta/ids.go), so it is a
// new member; the directory of the earlier one, if still there, is
// removed first. A new directory is created only from a state at least as
// new as this node's data (errReplicaWaits).
func (c *Cluster) startReplica(topic string, mp *metav1.Partition, rid uint64, cfg partition.Config) (*partition.Partition, error) {
	group := mp.GroupId
	name := partitionDirName(topic, mp.Index)
	if err := c.removeStaleAt(name, group); err != nil {
		return nil, err
	}
	dir := path.Join(c.cfg.DataDir, name)
	current := c.reconciled >= c.ctl.StartIndex()
	switch s, err := raftlog.ReadState(c.env.FS, path.Join(dir, raftStateFile)); {
	case err != nil:
		// No replica here yet (or one never finished: OpenReplica says).
		if !current {
			return nil, fmt.Errorf("%w: no directory for replica %x yet", errReplicaWaits, rid)
		}
		if err := c.removeRenewedDir(name, mp, rid, err); err != nil {
			return nil, err
		}
	case s.GroupID != group:
		// Another group's replica at the partition's place: a topic of
		// this name deleted and created again in a state newer than the
		// one applied (opening it as this group's would run one group's
		// log as another's, and the state catching up would then delete
		// it, markForDeletion), or older than it and not stale.
		return nil, fmt.Errorf("%w: the directory holds group %d's replica %x, the state places group %d's %x", errReplicaWaits, s.GroupID, s.ReplicaID, group, rid)
	case s.ReplicaID == rid:
	case meta.NodeReplicaID(s.ReplicaID) == meta.NodeReplicaID(rid) && meta.PlacementOf(s.ReplicaID) > meta.PlacementOf(rid) || !current:
		return nil, fmt.Errorf("%w: the directory holds replica %x, the state places %x", errReplicaWaits, s.ReplicaID, rid)
	default:
		// An earlier placement's replica on this node, no longer a member.
		c.env.Logger.Warn("replacing this node's earlier replica of the group", "dir", name, "group", group, "replica", s.ReplicaID, "new_replica", rid)
		if err := c.removeReplicaDir(name); err != nil {
			return nil, err
		}
	}
	// h.r is set before the group is added to the scheduler, whose worker
	// is the only caller of ConfState, and again by each recreation.
	h := &replicaHandle{}
	boot := raftlog.Bootstrap{GroupID: group, ReplicaID: rid, Index: replicaBootstrapIndex, Term: replicaBootstrapTerm,
		ConfState: &raftpb.ConfState{Voters: meta.BootstrapVoters(mp)}}
	damaged := func(err error) { c.noteDamaged(topic, mp.Index, group, rid, err) }
	rc := partition.ReplicaConfig{Propose: partition.SchedulerProposer(c.sched, group), ReadIndex: partition.SchedulerReadIndex(c.sched, group), Bootstrap: boot,
		ConfState: func() *raftpb.ConfState { return h.r.ConfState() },
		DiskFull:  func() { go c.restartReplica(h, "after a full disk", nil) },
		// Should the recreation fail, the replica is renewed instead.
		Restart: func() { go c.restartReplica(h, "after a snapshot refused for want of its copied data", damaged) },
		Damaged: damaged,
		// The snapshot fetcher copies a snapshot's data before raft sees it.
		CopiesSnapshots: true}
	p, err := partition.OpenReplica(c.env, dir, topic, mp.Index, cfg, rc)
	if err != nil {
		return nil, err
	}
	h.p, h.group, h.replicaID = p, group, rid
	applied, err := p.RaftApplied()
	if err == nil {
		err = c.addReplica(h, applied)
	}
	if err != nil {
		_ = p.Close() // the error that keeps it offline is err
		return nil, fmt.Errorf("start the replica of group %d: %w", group, err)
	}
	if applied <= replicaBootstrapIndex && mp.ReassignmentId == 0 && len(mp.BootstrapReplicas) == 0 && cmp.Or(mp.PreferredLeader, mp.Replicas[0]) == rid {
		if err := c.sched.Do(group, func(r *replica.Replica) { _ = r.Campaign() }); err != nil {
			c.env.Logger.Warn("campaigning for a new partition group; its election timeout will elect a leader", "group", group, "err", err)
		}
	}
	return p, nil
}

// replicaHandle is a partition's replica as the node runs it: recreated
// after a failed write for lack of space or a refused snapshot
// (restartReplica).
type replicaHandle struct {
	p                *partition.Partition
	group, replicaID uint64
	r                *replica.Replica
	// fullRestarts counts the recreations in a row, and lastRestart is the
	// time of the last: what the next one's backoff is.
	fullRestarts int
	lastRestart  time.Time
}

// addReplica creates the partition's replica from its Raft log, as of
// applied, and adds its group to the scheduler.
func (c *Cluster) addReplica(h *replicaHandle, applied uint64) error {
	st := h.p.RaftStorage()
	rcfg := c.raftConfig()
	rcfg.ID, rcfg.GroupID, rcfg.Applied = h.replicaID, h.group, applied
	r, err := replica.New(c.env, rcfg, st, &replicaMachine{Partition: h.p, c: c, group: h.group, replicaID: h.replicaID, timer: &commitTimer{}})
	if err != nil {
		return err
	}
	h.r = r
	return c.sched.AddGroup(h.group, r, st, replica.GroupOptions{Quiesce: true})
}

// restartReplica recreates a replica stopped with its Raft log whole (a
// failed write for lack of space; a snapshot refused for want of its
// copied data), after a backoff, from the log as it stands
// (partition.RestartPoint): raft is never told entries are durable that
// are not, and the group goes on (leads, follows) once space returns, or
// its leader sends the snapshot again and this node copies its data. It
// runs on its own goroutine: the partition asks on the replica's worker,
// which may not remove its own group. Under mu, so that no reconcile
// closes the partition meanwhile; a partition closed or replaced first is
// left alone. A recreation that fails leaves the replica stopped, and is
// handed to failed when set.
func (c *Cluster) restartReplica(h *replicaHandle, why string, failed func(error)) {
	c.mu.Lock()
	wait := diskFullBackoff(h.fullRestarts, c.env.Clock.Now().Sub(h.lastRestart))
	c.mu.Unlock()
	timer := c.env.Clock.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C():
	case <-c.stop:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.stop:
		return // closing: the partition closes with its group
	default:
	}
	if !c.holds(h.p) {
		return
	}
	now := c.env.Clock.Now()
	if now.Sub(h.lastRestart) > diskFullBackoffMax {
		h.fullRestarts = 0
	}
	h.fullRestarts++
	h.lastRestart = now
	err := c.recreateReplica(h)
	if err != nil {
		c.env.Logger.Error("recreating a partition's replica "+why+"; it stays stopped", "group", h.group, "err", err)
		if failed != nil {
			failed(err)
		}
	}
}

// recreateReplica takes the stopped replica off the scheduler first, so
// that RestartPoint records its applied state with no worker running it.
func (c *Cluster) recreateReplica(h *replicaHandle) error {
	if err := c.sched.RemoveGroup(h.group); err != nil {
		return err
	}
	applied, err := h.p.RestartPoint()
	if err != nil {
		return err
	}
	return c.addReplica(h, applied)
}

// holds reports whether p is still one of the open partitions. Callers
// hold mu.
func (c *Cluster) holds(p *partition.Partition) bool {
	for _, t := range c.topics {
		for _, s := range t.Partitions {
			if s.Partition == p {
				return true
			}
		}
	}
	return false
}

// diskFullBackoff is the wait before the n+1th recreation in a row of a
// replica stopped by a full disk, since the last one: it doubles from
// diskFullBackoffMin to diskFullBackoffMax; a replica that ran longer than
// that since it was last recreated starts over.
func diskFullBackoff(n int, since time.Duration) time.Duration {
	if n == 0 || since > diskFullBackoffMax {
		return diskFullBackoffMin
	}
	return min(diskFullBackoffMin<<min(n, 16), diskFullBackoffMax)
}

const (
	diskFullBackoffMin = 100 * time.Millisecond
	diskFullBackoffMax = 30 * time.Second
)

// The bootstrap snapshot of a new partition group (as the metadata
// group's, design §5.4): the same on every replica.
const (
	replicaBootstrapIndex = 1
	replicaBootstrapTerm  = 1
)

// closeSlot closes a slot's partition; a replica's group leaves the
// scheduler first, since the partition's Close closes the Raft log the
// replica reads and writes.
func (c *Cluster) closeSlot(s *PartitionSlot) error {
	if s.Partition == nil {
		return nil
	}
	if s.Partition.Replicated() {
		if err := c.sched.RemoveGroup(s.Group); err != nil && !errors.Is(err, replica.ErrUnknownGroup) {
			c.env.Logger.Warn("removing a partition group from the scheduler", "group", s.Group, "err", err)
		}
		c.watchMu.Lock()
		delete(c.leaderships, s.Group)
		c.signalLeadersLocked()
		c.watchMu.Unlock()
		c.node.leaders.RemoveGroup(s.Group)
	}
	return s.Partition.Close()
}

// forgetGroups drops a deleted topic's groups from the leader table.
func (c *Cluster) forgetGroups(t *Topic) {
	if c.node == nil {
		return
	}
	for _, s := range t.Partitions {
		c.node.leaders.Forget(s.Group)
	}
}

// replicaMachine is a partition as its replica's state machine, also
// telling the cluster of leadership changes. It runs on the group's
// worker, so it takes watchMu and the leader table's lock, never mu.
type replicaMachine struct {
	*partition.Partition
	c                *Cluster
	group, replicaID uint64
	timer            *commitTimer // see stats.go
}

// LeadershipChanged implements replica.StateMachine.
func (m *replicaMachine) LeadershipChanged(l replica.Leadership) {
	m.Partition.LeadershipChanged(l)
	m.c.watchMu.Lock()
	m.countElectionWon(m.c.leaderships[m.group], l)
	m.c.leaderships[m.group] = l
	m.c.signalLeadersLocked()
	m.c.watchMu.Unlock()
	if err := m.c.node.leaders.LeadershipChanged(m.group, m.replicaID, l); err != nil {
		m.c.env.Logger.Error("recording a partition's leadership in the leader table", "group", m.group, "err", err)
	}
	if l.Ready && l.Leader == m.replicaID && m.DiskFullRecovering() {
		// Off the worker: the transfer is a call on this group's replica.
		go m.c.handOffFullReplica(m.Partition, m.group)
	}
}

// handOffFullReplica hands the leadership of group, which this node's
// replica won while its disk was last found full (no record batch
// written since), to an in-sync voter on a node not found gone: that
// replica would refuse every produce until space returns, and, its log as
// long as the others', it may win every election meanwhile. While it has
// no such voter (the others just came back) it asks again every election
// timeout for as long as it leads; a single replica keeps leading. Raft
// drops a transfer its target did not take within an election timeout (a
// lost message, a target busy restarting), so while the replica still
// leads in the term it asked in, it asks again, another voter each time,
// up to handOffFullAsks times: a transfer pending holds every proposal.
// It hands over once per failed write: elected in a later term, the
// replica leads.
func (c *Cluster) handOffFullReplica(p *partition.Partition, group uint64) {
	retry := time.Duration(c.cfg.RaftTickMs*int64(c.cfg.RaftElectionTicks)) * time.Millisecond
	var askedIn uint64 // the term of the transfers asked, 0 before the first
	for asks := 0; ; {
		again := false
		err := c.sched.Do(group, func(r *replica.Replica) {
			l := r.Leadership()
			if !l.Ready || l.Leader != r.ID() {
				return
			}
			if askedIn == 0 && !p.DiskFullRecovering() || askedIn != 0 && (l.Term != askedIn || asks == handOffFullAsks) {
				return
			}
			inSync := slices.DeleteFunc(inSyncVoters(r.Status()), c.replicaGone)
			if len(inSync) == 0 {
				again = len(r.ConfState().Voters) > 1
				return
			}
			to := inSync[asks%len(inSync)]
			c.env.Logger.Warn("leading with a raft log that ran out of space; handing the leadership over",
				"topic", p.Topic(), "partition", p.Index(), "to_node", meta.NodeOf(to), "ask", asks+1)
			p.HandedOffAfterDiskFull()
			r.TransferLeader(to)
			askedIn, asks, again = l.Term, asks+1, true
		})
		if err != nil {
			c.env.Logger.Debug("handing over a leadership won with a full disk", "group", group, "err", err)
			return
		}
		if !again {
			return
		}
		timer := c.env.Clock.NewTimer(retry)
		select {
		case <-timer.C():
		case <-c.stop:
			timer.Stop()
			return
		}
	}
}

// handOffFullAsks bounds the transfers handOffFullReplica asks in one
// term.
const handOffFullAsks = 3

// LogLost implements replica.LogLoser: the partition goes offline, and
// the replica is renewed (damaged.go).
func (m *replicaMachine) LogLost(err error) {
	m.Partition.LogLost(err)
	m.c.noteDamaged(m.Topic(), m.Index(), m.group, m.replicaID, err)
}

// leadership is the last leadership this node's replica of group
// reported.
func (c *Cluster) leadership(group uint64) replica.Leadership {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return c.leaderships[group]
}
