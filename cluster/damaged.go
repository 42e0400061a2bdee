package cluster

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
)

// A replica whose copy of the partition is damaged is renewed: a bit flip
// or a cut in a segment or Raft file, found when the replica opens (a
// storage.CorruptionError: damage recovery may not repair), when the
// group's leader commits past what is left of its log (replica.ErrLogLost:
// damage after the last checkpoint, taken for a torn tail and cut), or by
// a later read (partition.ReplicaConfig.Damaged: a flip below the recovery
// point, which the open does not validate). The partition is offline here
// and the replica's group leaves the scheduler (stopDamaged), so it
// neither leads a group whose writes it refuses nor votes with a log it
// lost; this node then asks the metadata group to replace it by a new
// replica on the same node (BeginReassignment with RenewReplicas: the
// partition's next placement), which the group's leader adds as a
// learner, catches up and swaps in like any move. The damaged replica's
// id never runs again. It is asked only while another node leads the
// group: a partition damaged on every replica stays offline rather than
// be renewed from nothing.

// damagedReplica is a replica of this node found damaged.
type damagedReplica struct {
	topic string
	index int32
	group uint64
	err   error
	// stopped: its group is off the scheduler (stopDamaged).
	stopped bool
}

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

// isDamage reports whether a replica's open failed on damaged files.
func isDamage(err error) bool { return partition.StoredBytesInvalid(err) }

// renewDamaged proposes the renewal of each damaged replica the state
// still lists, no move running on its partition, while another node leads
// its group, and forgets those the state no longer lists.
func (c *Cluster) renewDamaged(ctx context.Context) error {
	c.watchMu.Lock()
	damaged := make(map[uint64]damagedReplica, len(c.damaged))
	for rid, d := range c.damaged {
		damaged[rid] = d
	}
	c.watchMu.Unlock()
	st := c.ctl.State()
	var errs []error
	for rid, d := range damaged {
		if !d.stopped {
			c.stopDamaged(rid, d)
		}
		p, t, renew := planRenewal(st, d, rid)
		if p == nil || !renew {
			if p == nil {
				c.watchMu.Lock()
				delete(c.damaged, rid)
				c.watchMu.Unlock()
			}
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
		if errors.Is(err, ErrReassignmentInProgress) {
			continue // another move first, or this one applied since
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("renew replica %#x of %s-%d: %w", rid, d.topic, d.index, err))
			continue
		}
		c.env.Logger.Warn("renewing a damaged replica: a new one on this node copies the partition from its group",
			"topic", d.topic, "partition", d.index, "replica", fmt.Sprintf("%#x", rid), "leader", node)
	}
	return errors.Join(errs...)
}

// stopDamaged takes the group of a damaged replica that still runs off
// the scheduler: a replica whose partition went offline on a damaged
// read would otherwise go on leading a group that refuses every write,
// and one that lost entries must not vote. The others elect a leader
// among themselves, from which the renewal copies.
func (c *Cluster) stopDamaged(rid uint64, d damagedReplica) {
	c.mu.Lock()
	t, ok := c.topics[d.topic]
	running := ok && int(d.index) < len(t.Partitions) && t.Partitions[d.index].replicaID == rid &&
		t.Partitions[d.index].Partition != nil && t.Partitions[d.index].Group == d.group
	if running {
		c.stopGroup(d.group)
	}
	c.mu.Unlock()
	c.watchMu.Lock()
	if cur, ok := c.damaged[rid]; ok {
		cur.stopped = true
		c.damaged[rid] = cur
	}
	c.watchMu.Unlock()
	if running {
		c.env.Logger.Warn("stopped the damaged replica's group on this node", "topic", d.topic, "partition", d.index,
			"replica", fmt.Sprintf("%#x", rid))
	}
}

// planRenewal finds the partition of a damaged replica in st: nil when st
// no longer lists the replica (renewed, moved away, or the topic deleted),
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

// removeDamagedDir removes the directory of a replica that failed to open
// on damaged files once the state places a new replica of the partition
// here: its raft-state may be the damaged file, so startReplica could not
// tell it for an earlier placement's. Callers hold mu.
func (c *Cluster) removeDamagedDir(topic string, s *PartitionSlot, rid uint64) {
	if s.Partition != nil || !isDamage(s.Offline) || s.replicaID == rid || rid == 0 {
		return
	}
	name := partitionDirName(topic, s.Index)
	c.env.Logger.Warn("removing the damaged replica's directory for its renewal", "dir", path.Join(c.cfg.DataDir, name),
		"replica", fmt.Sprintf("%#x", s.replicaID), "new_replica", fmt.Sprintf("%#x", rid))
	if err := c.removeReplicaDir(name); err != nil {
		c.env.Logger.Error("removing the damaged replica's directory", "dir", name, "err", err)
	}
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
