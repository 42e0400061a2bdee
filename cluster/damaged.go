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
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
)

// A replica whose copy of the partition is damaged is renewed: a bit flip
// or a cut in a segment or Raft file, found when the replica opens (a
// storage.CorruptionError or a bad batch: damage recovery may not repair),
// when the group's leader commits past what is left of its log
// (replica.ErrLogLost: damage after the last checkpoint, taken for a torn
// tail and cut), or by a later read (partition.ReplicaConfig.Damaged: a
// bad batch below the recovery point, which the open does not read). The
// partition is offline here. Once the group's other replicas are a quorum
// by themselves, on live nodes, the replica's group leaves the scheduler
// (stopDamaged; a leader hands its leadership over first), so it neither leads a group whose writes it refuses nor
// votes with a log it lost, and once one of them leads, this node asks
// the metadata group to replace it by a new replica on the same node
// (BeginReassignment with RenewReplicas: the partition's next placement),
// which the leader adds as a learner, catches up and swaps in like any
// move; the node removes the damaged directory as the new replica opens.
// A renewal cannot be cancelled, so the damaged id never runs again once
// it began. The record is in memory: a node restarted before that opens
// the replica again, and renews it when its damage shows again (at once
// for damage the open finds). A partition damaged on every replica, or
// with no live quorum besides this one, stays offline rather than be
// renewed from nothing or stall its group.

// damagedReplica is a replica of this node found damaged.
type damagedReplica struct {
	topic string
	index int32
	group uint64
	err   error
	// stopped: its group is off the scheduler (stopDamaged).
	stopped bool
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
// nil deletes it.
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

// isDamage reports whether a replica's open failed on damaged files.
func isDamage(err error) bool { return partition.StoredBytesInvalid(err) }

// renewDamaged asks for the renewal of each damaged replica the state
// still lists, no move running on its partition, once the other replicas
// are a live quorum by themselves (stopping this one, and the move's
// changes, must not depend on it) and one of them leads; it forgets those
// the state no longer lists as replicas. A refused request is asked again
// after a backoff, and each new refusal logged once.
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
			continue
		}
		if !renew || now.Before(d.retryAt) || !c.othersQuorum(p, rid) {
			continue
		}
		if !d.stopped && !c.stopDamaged(rid, d) {
			continue // handing its leadership over first
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
// quorum of all of them, on nodes alive.
func (c *Cluster) othersQuorum(p *metav1.Partition, rid uint64) bool {
	alive := 0
	for _, r := range p.Replicas {
		if r != rid && meta.NodeOf(r) != c.cfg.NodeID && c.node.leaders.Alive(uint64(meta.NodeOf(r))) {
			alive++
		}
	}
	return alive >= len(p.Replicas)/2+1
}

// stopDamaged takes the group of a damaged replica that still runs off
// the scheduler: a replica whose partition went offline on a damaged
// read would otherwise go on leading a group that refuses every write,
// and one that lost entries must not vote. A leader first hands its
// leadership to an in-sync voter, asked again at each call until another
// leads: gone from the scheduler while leading, it would leave followers
// that quiesced waiting for it. It reports whether the group is stopped.
func (c *Cluster) stopDamaged(rid uint64, d damagedReplica) bool {
	c.mu.Lock()
	t, ok := c.topics[d.topic]
	running := ok && int(d.index) < len(t.Partitions) && t.Partitions[d.index].replicaID == rid &&
		t.Partitions[d.index].Partition != nil && t.Partitions[d.index].Group == d.group
	if running && c.isSelf(c.leadership(d.group).Leader) {
		c.mu.Unlock()
		err := c.sched.Do(d.group, func(r *replica.Replica) {
			if to := inSyncVoters(r.Status()); len(to) > 0 {
				r.TransferLeader(to[0])
			}
		})
		if err == nil {
			return false
		}
		c.mu.Lock() // the group left the scheduler meanwhile: nothing leads here
	}
	if running {
		c.stopGroup(d.group)
	}
	c.mu.Unlock()
	c.updateDamaged(rid, func(d *damagedReplica) bool { d.stopped = true; return true })
	if running {
		c.env.Logger.Warn("stopped the damaged replica's group on this node", "topic", d.topic, "partition", d.index,
			"replica", fmt.Sprintf("%#x", rid))
	}
	return true
}

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

// removeRenewedDir removes directory name when rid renews this node's
// replica of mp (mp lists another of this node's replicas) and the
// directory's raft-state is unreadable: it is the damaged replica's (its
// raft-state what is damaged), or a renewing one's that never finished,
// and rid starts afresh from the group. A directory whose raft-state
// reads is told apart by startReplica itself.
func (c *Cluster) removeRenewedDir(name string, mp *metav1.Partition, rid uint64) error {
	renewing := slices.ContainsFunc(mp.Replicas, func(r uint64) bool { return c.isSelf(r) && r != rid })
	if !renewing {
		return nil
	}
	if _, err := c.env.FS.List(path.Join(c.cfg.DataDir, name)); err != nil {
		return nil // no directory
	}
	c.env.Logger.Warn("removing the damaged replica's directory for its renewal", "dir", path.Join(c.cfg.DataDir, name),
		"new_replica", fmt.Sprintf("%#x", rid))
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
