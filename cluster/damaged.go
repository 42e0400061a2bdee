package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
)

// A replica whose copy of the partition is damaged is renewed: a bit flip
// or a cut in a segment or Raft file, found when the replica opens (a
// storage.CorruptionError or a bad batch: damage recovery may not repair),
// when the group's leader commits past what is left of its log
// (replica.ErrLogLost: damage after the last checkpoint, taken for a torn
// tail and cut), or by a later read (partition.ReplicaConfig.Damaged: a
// bad batch below the recovery point, which the open does not read). The
// partition is offline here. The first two leave no replica running (it
// failed to open, or stopped); the third leaves a sound Raft member whose
// partition refuses to serve, so if it leads it hands its leadership to
// an in-sync voter (handOverDamaged). Once the group's other replicas are
// a quorum by themselves, each on its node's current ACTIVE incarnation
// and alive, and one of them leads, this node asks the metadata group to
// replace the damaged replica by a new one on the same node
// (BeginReassignment with RenewReplicas: the partition's next placement),
// which the leader adds as a learner, catches up and swaps in like any
// move; the node removes the damaged directory as the new replica opens.
// A renewal cannot be cancelled while its new replica's node incarnation
// is current, so the damaged id never runs again once it began. The
// record is in memory: a node restarted before that opens the replica
// again, and renews it when its damage shows again (at once for damage
// the open finds). A partition damaged on every replica, or with no live
// quorum besides this one, stays offline here rather than be renewed from
// nothing.

// damagedReplica is a replica of this node found damaged.
type damagedReplica struct {
	topic string
	index int32
	group uint64
	err   error
	// handingOver: it led, and was asked to hand its leadership over
	// (handOverDamaged), since handOverAt.
	handingOver bool
	handOverAt  time.Time
	// tries counts the refused renewals in a row; the next is asked at
	// retryAt, and lastErr is the last refusal logged.
	tries   int
	retryAt time.Time
	lastErr string
}

// renewRetryMax bounds the wait before a refused renewal is asked again.
const renewRetryMax = 30 * time.Second

// noteDamaged records that replica rid of a partition is damaged and wakes
// moveLoop to renew it. It takes only watchMu: the replicas' workers call
// it.
func (c *Cluster) noteDamaged(topic string, index int32, group, rid uint64, err error) {
	c.watchMu.Lock()
	_, known := c.damaged[rid]
	if !known {
		c.damaged[rid] = damagedReplica{topic: topic, index: index, group: group, err: err}
	}
	c.watchMu.Unlock()
	if !known {
		c.env.Logger.Error("replica damaged; asking for a new copy from the group", "topic", topic, "partition", index,
			"group", group, "replica", fmt.Sprintf("%#x", rid), "err", err)
	}
	c.signalMoves()
}

// hasDamaged reports whether a damaged replica waits for its renewal.
func (c *Cluster) hasDamaged() bool {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return len(c.damaged) > 0
}

// updateDamaged changes the record of damaged replica rid, if still kept;
// a change that returns false deletes it.
func (c *Cluster) updateDamaged(rid uint64, change func(*damagedReplica) bool) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if d, ok := c.damaged[rid]; ok {
		if change(&d) {
			c.damaged[rid] = d
		} else {
			delete(c.damaged, rid)
		}
	}
}

// renewDamaged asks for the renewal of each damaged replica the state
// still lists, no move running on its partition, once the other replicas
// are a live quorum by themselves and one of them leads; a damaged leader
// hands its leadership over first. It forgets the replicas the state no
// longer lists as replicas. A refused request is asked again after a
// backoff, and each new refusal logged once.
func (c *Cluster) renewDamaged(ctx context.Context) {
	c.watchMu.Lock()
	damaged := maps.Clone(c.damaged)
	c.watchMu.Unlock()
	st := c.ctl.State()
	now := c.env.Clock.Now()
	for rid, d := range damaged {
		p, t, renew := planRenewal(st, d, rid)
		if p == nil {
			c.updateDamaged(rid, func(*damagedReplica) bool { return false })
			if movingHere(st, d, rid) {
				// A move's new replica (a renewal's too) damaged before it
				// became a replica: that move cannot finish here.
				c.env.Logger.Error("a moving partition's new replica on this node is damaged; its move cannot finish: "+
					"cancel it, or wipe this node's data directory", "topic", d.topic, "partition", d.index,
					"replica", fmt.Sprintf("%#x", rid), "err", d.err)
			}
			continue
		}
		c.handOverDamaged(rid, d, now)
		if !renew || now.Before(d.retryAt) || !othersQuorum(st, p, rid, c.cfg.NodeID, c.node.leaders.Alive) {
			continue
		}
		node, _, _, ok := c.node.leaders.Leader(d.group)
		if !ok || int32(node) == c.cfg.NodeID || c.nodeGone(int32(node)) {
			continue // renewed only from a live leader elsewhere
		}
		cmd := &metav1.Command{Command: &metav1.Command_BeginReassignment{BeginReassignment: &metav1.BeginReassignment{
			Partition:      &metav1.PartitionRef{Topic: t.Name, TopicId: t.Id, Partition: p.Index},
			TargetReplicas: p.Replicas, RenewReplicas: []uint64{rid}}}}
		_, err := c.proposeCtx(ctx, cmd)
		if errors.Is(err, ErrReassignmentInProgress) || err != nil && ctx.Err() != nil {
			continue // another move first, or this one applied since; or closing
		}
		if err != nil {
			c.updateDamaged(rid, func(d *damagedReplica) bool {
				d.retryAt = now.Add(min(renewRetryMax, moveInterval<<min(d.tries, 10)))
				d.tries++
				if msg := err.Error(); msg != d.lastErr {
					d.lastErr = msg
					c.env.Logger.Warn("asking to renew a damaged replica failed; asking again later", "topic", d.topic,
						"partition", d.index, "replica", fmt.Sprintf("%#x", rid), "err", err)
				}
				return true
			})
			continue
		}
		c.env.Logger.Warn("renewing a damaged replica: a new one on this node copies the partition from its group",
			"topic", d.topic, "partition", d.index, "replica", fmt.Sprintf("%#x", rid), "leader", node)
	}
}

// othersQuorum reports whether the replicas of p other than rid are a
// quorum of all of them, each of its node's current ACTIVE incarnation
// in st (a wiped node's old replica runs nowhere) and alive. Pure but for
// alive.
func othersQuorum(st *metav1.State, p *metav1.Partition, rid uint64, self int32, alive func(node uint64) bool) bool {
	live := 0
	for _, r := range p.Replicas {
		if r == rid || meta.NodeOf(r) == self || !alive(uint64(meta.NodeOf(r))) {
			continue
		}
		b, ok := brokerOf(st, meta.NodeOf(r))
		if ok && b.State == metav1.BrokerState_BROKER_STATE_ACTIVE && b.Incarnation == meta.IncarnationOf(r) {
			live++
		}
	}
	return live >= len(p.Replicas)/2+1
}

// handOverDamaged asks damaged replica rid, while it leads its group, to
// hand its leadership to an in-sync voter: its partition refuses every
// write, and leading it would keep the group from a leader that serves.
// Asked again at each call (raft drops a transfer that does not finish
// within an election timeout); logged once, and again when no voter took
// it within handOverWarnAfter.
func (c *Cluster) handOverDamaged(rid uint64, d damagedReplica, now time.Time) {
	if c.leadership(d.group).Leader != rid {
		if d.handingOver {
			c.updateDamaged(rid, func(d *damagedReplica) bool { d.handingOver = false; return true })
		}
		return
	}
	var to uint64
	err := c.sched.Do(d.group, func(r *replica.Replica) {
		if in := inSyncVoters(r.Status()); len(in) > 0 {
			to = in[0]
			r.TransferLeader(to)
		}
	})
	switch {
	case err != nil:
	case !d.handingOver:
		c.env.Logger.Warn("handing the damaged replica's leadership to another replica", "topic", d.topic,
			"partition", d.index, "replica", fmt.Sprintf("%#x", rid), "to", fmt.Sprintf("%#x", to))
		c.updateDamaged(rid, func(d *damagedReplica) bool { d.handingOver, d.handOverAt = true, now; return true })
	case now.Sub(d.handOverAt) >= handOverWarnAfter:
		c.env.Logger.Warn("the damaged replica still leads: no in-sync voter took its leadership", "topic", d.topic,
			"partition", d.index, "replica", fmt.Sprintf("%#x", rid), "since", d.handOverAt)
		c.updateDamaged(rid, func(d *damagedReplica) bool { d.handOverAt = now.Add(renewRetryMax); return true })
	}
}

// handOverWarnAfter is how long a damaged leader may go on leading after
// it was asked to hand over before that is logged.
const handOverWarnAfter = 5 * time.Second

// planRenewal finds the partition of a damaged replica in st: nil when st
// no longer lists the replica among the partition's replicas (renewed,
// moved away, the topic deleted, or a move's target not yet a replica,
// which is left to that move),
// and whether a renewal may be proposed now (no move running, and another
// replica to copy from). Pure.
func planRenewal(st *metav1.State, d damagedReplica, rid uint64) (*metav1.Partition, *metav1.Topic, bool) {
	t, ok := topicNamed(st, d.topic)
	if !ok || d.index < 0 || int(d.index) >= len(t.Partitions) {
		return nil, nil, false
	}
	p := t.Partitions[d.index]
	if p.GroupId != d.group || !slices.Contains(p.Replicas, rid) {
		return nil, nil, false
	}
	return p, t, p.ReassignmentId == 0 && len(p.Replicas) > 1
}

// movingHere reports whether damaged replica rid is a running move's
// target on its partition in st. Pure.
func movingHere(st *metav1.State, d damagedReplica, rid uint64) bool {
	t, ok := topicNamed(st, d.topic)
	return ok && d.index >= 0 && int(d.index) < len(t.Partitions) && slices.Contains(t.Partitions[d.index].TargetReplicas, rid)
}

// removeRenewedDir removes directory name when rid renews this node's
// replica of mp (mp lists another of this node's replicas), the
// directory's raft-state is missing or invalid (stateErr), and its
// raft-meta header names that other replica: the damaged one, whose
// raft-state is what is damaged. Anything else is left to OpenReplica: a
// directory that may be rid's own (a voter's, once the group swapped it
// in) is never removed, nor one a failed read (an I/O error) says
// nothing about.
func (c *Cluster) removeRenewedDir(name string, mp *metav1.Partition, rid uint64, stateErr error) error {
	if !errors.Is(stateErr, raftlog.ErrStateMissing) && !errors.Is(stateErr, raftlog.ErrInvalid) {
		return nil
	}
	dir := path.Join(c.cfg.DataDir, name)
	h, err := raftlog.ReadMetaHeader(c.env.FS, dir)
	if err != nil || h.GroupID != mp.GroupId || h.ReplicaID == rid || !c.isSelf(h.ReplicaID) ||
		meta.PlacementOf(h.ReplicaID) >= meta.PlacementOf(rid) || !slices.Contains(mp.Replicas, h.ReplicaID) {
		return nil
	}
	c.env.Logger.Warn("removing the damaged replica's directory for its renewal", "dir", dir,
		"replica", fmt.Sprintf("%#x", h.ReplicaID), "new_replica", fmt.Sprintf("%#x", rid))
	return c.removeReplicaDir(name)
}

// newestLocal is the highest placement of this node's replicas of a
// partition: a renewal lists the damaged replica and its successor on
// the same node until the move completes, and only the successor runs.
func newestLocal(ids []uint64) uint64 {
	var best uint64
	for _, r := range ids {
		if best == 0 || meta.PlacementOf(r) > meta.PlacementOf(best) {
			best = r
		}
	}
	return best
}
