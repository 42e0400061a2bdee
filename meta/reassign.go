package meta

import (
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// partitionAt finds the partition a reference names.
func (m *Machine) partitionAt(ref *metav1.PartitionRef) (*metav1.Partition, *refusal) {
	if ref == nil {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "no partition named")
	}
	t, _, r := m.topicNamed(ref.Topic, ref.TopicId, false)
	if r != nil {
		return nil, r
	}
	if ref.Partition < 0 || int(ref.Partition) >= len(t.Partitions) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %s has %d partitions, no partition %d",
			ref.Topic, len(t.Partitions), ref.Partition)
	}
	return t.Partitions[ref.Partition], nil
}

// beginReassignment records where a partition moves; the id of the move is
// the index of this entry. Replicas it adds must be on active brokers, and
// get the partition's next placements; those it keeps (named by any id of
// their node incarnation) may be anywhere. A renewed replica (a damaged
// copy) is added again on its node, under a new placement.
func (m *Machine) beginReassignment(index uint64, c *metav1.BeginReassignment) (*metav1.Result, *refusal) {
	p, r := m.partitionAt(c.Partition)
	if r != nil {
		return nil, r
	}
	if p.ReassignmentId != 0 {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_REASSIGNMENT_IN_PROGRESS, "%s-%d is being moved by reassignment %d",
			c.Partition.Topic, p.Index, p.ReassignmentId)
	}
	for _, r := range c.RenewReplicas {
		// Named exactly: a renewal asked again after it applied (its
		// answer lost) names a replica the partition no longer has.
		if !slices.Contains(p.Replicas, r) {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%s-%d has no replica %d to renew (replicas %v)",
				c.Partition.Topic, p.Index, r, p.Replicas)
		}
		if !slices.ContainsFunc(c.TargetReplicas, func(t uint64) bool { return NodeReplicaID(t) == NodeReplicaID(r) }) {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%s-%d: replica %d is renewed on its node, which the target leaves out",
				c.Partition.Topic, p.Index, r)
		}
	}
	// A target on the node incarnation of a current replica is that
	// replica, kept unless renewed; any other is added, checked at
	// placement 0.
	kept := slices.DeleteFunc(slices.Clone(p.Replicas), func(r uint64) bool { return slices.Contains(c.RenewReplicas, r) })
	target := make([]uint64, len(c.TargetReplicas))
	adds := make([]bool, len(c.TargetReplicas))
	added := 0
	for i, r := range c.TargetReplicas {
		at := slices.IndexFunc(kept, func(o uint64) bool { return NodeReplicaID(o) == NodeReplicaID(r) })
		if at >= 0 {
			target[i] = kept[at]
		} else {
			target[i] = NodeReplicaID(r)
			adds[i] = true
			added++
		}
	}
	if r := m.checkReplicaSet(target, kept); r != nil {
		return nil, r
	}
	if added == 0 && sameSet(p.Replicas, target) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%s-%d already has replicas %v", c.Partition.Topic, p.Index, p.Replicas)
	}
	if uint64(p.Placements)+uint64(added) > PlacementMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%s-%d has had %d placements, at most %d", c.Partition.Topic, p.Index, p.Placements, PlacementMax)
	}
	// Each added replica is a new Raft member, even on a node it left or
	// on the node of the damaged copy it renews.
	for i, r := range target {
		if adds[i] {
			p.Placements++
			target[i] = WithPlacement(r, p.Placements)
		}
	}
	p.TargetReplicas = target
	p.ReassignmentId = index
	return &metav1.Result{ReassignmentId: index}, nil
}

func sameSet(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for _, r := range a {
		if !slices.Contains(b, r) {
			return false
		}
	}
	return true
}

// reassigned finds the partition of a running reassignment.
func (m *Machine) reassigned(ref *metav1.PartitionRef, id uint64) (*metav1.Partition, *refusal) {
	p, r := m.partitionAt(ref)
	if r != nil {
		return nil, r
	}
	if id == 0 || p.ReassignmentId != id {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_NO_REASSIGNMENT, "%s-%d: reassignment %d is not running (running: %d)",
			ref.Topic, p.Index, id, p.ReassignmentId)
	}
	return p, nil
}

// completeReassignment makes the targets the replicas. The preferred leader
// stays where it is if it is still a replica, passes to a renewed one's
// successor on the same node, else moves to the first target.
func (m *Machine) completeReassignment(c *metav1.CompleteReassignment) (*metav1.Result, *refusal) {
	p, r := m.reassigned(c.Partition, c.ReassignmentId)
	if r != nil {
		return nil, r
	}
	if len(p.BootstrapReplicas) == 0 {
		p.BootstrapReplicas = p.Replicas
	}
	p.Replicas, p.TargetReplicas, p.ReassignmentId = p.TargetReplicas, nil, 0
	if !slices.Contains(p.Replicas, p.PreferredLeader) {
		at := slices.IndexFunc(p.Replicas, func(r uint64) bool { return NodeReplicaID(r) == NodeReplicaID(p.PreferredLeader) })
		p.PreferredLeader = p.Replicas[max(at, 0)]
	}
	return &metav1.Result{}, nil
}

// cancelReassignment abandons a move; the replicas stay as they were. A
// renewal is abandoned only once its new replica's node incarnation is no
// longer the current one (the node wiped), or the node was removed: the replica
// it replaces is damaged, and its node already runs the new one in its
// place.
func (m *Machine) cancelReassignment(c *metav1.CancelReassignment) (*metav1.Result, *refusal) {
	p, r := m.reassigned(c.Partition, c.ReassignmentId)
	if r != nil {
		return nil, r
	}
	if renewing(p) && !StaleRenewal(m.state, p) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%s-%d: reassignment %d renews a damaged replica and cannot be cancelled",
			c.Partition.Topic, p.Index, p.ReassignmentId)
	}
	p.TargetReplicas, p.ReassignmentId = nil, 0
	return &metav1.Result{}, nil
}

// renewing reports whether a partition's move renews a replica: its
// target places another replica on the node incarnation of a current one.
func renewing(p *metav1.Partition) bool { return slices.ContainsFunc(p.TargetReplicas, renewalOf(p)) }

// renewalOf reports, for a target of p, whether it renews a replica of p.
func renewalOf(p *metav1.Partition) func(t uint64) bool {
	return func(t uint64) bool {
		return !slices.Contains(p.Replicas, t) &&
			slices.ContainsFunc(p.Replicas, func(r uint64) bool { return NodeReplicaID(r) == NodeReplicaID(t) })
	}
}

// StaleRenewal reports whether p's move renews a replica on a node whose
// current incarnation is no longer the renewed one's (wiped and
// registered again), or which was removed: that move can never finish,
// and may be cancelled.
func StaleRenewal(st *metav1.State, p *metav1.Partition) bool {
	return slices.ContainsFunc(p.TargetReplicas, func(t uint64) bool {
		if !renewalOf(p)(t) {
			return false
		}
		at := slices.IndexFunc(st.Brokers, func(b *metav1.Broker) bool { return b.NodeId == NodeOf(t) })
		return at < 0 || st.Brokers[at].State == metav1.BrokerState_BROKER_STATE_REMOVED || st.Brokers[at].Incarnation != IncarnationOf(t)
	})
}

// setPreferredLeaders checks every listed leader before setting any.
func (m *Machine) setPreferredLeaders(c *metav1.SetPreferredLeaders) (*metav1.Result, *refusal) {
	if len(c.Leaders) < 1 || len(c.Leaders) > PreferredLeadersMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%d preferred leaders: must be between 1 and %d", len(c.Leaders), PreferredLeadersMax)
	}
	parts := make([]*metav1.Partition, len(c.Leaders))
	for i, l := range c.Leaders {
		p, r := m.partitionAt(l.GetPartition())
		if r != nil {
			return nil, r
		}
		if !slices.Contains(p.Replicas, l.Replica) {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%s-%d: %d is not one of its replicas %v",
				l.Partition.Topic, p.Index, l.Replica, p.Replicas)
		}
		parts[i] = p
	}
	for i, p := range parts {
		p.PreferredLeader = c.Leaders[i].Replica
	}
	return &metav1.Result{}, nil
}

// BootstrapVoters are the voters of the bootstrap snapshot every replica
// of p's group starts its log from: a replica a move adds opens with them,
// so the configuration changes it then replays apply to the configuration
// they were made in.
func BootstrapVoters(p *metav1.Partition) []uint64 {
	if len(p.GetBootstrapReplicas()) > 0 {
		return slices.Clone(p.BootstrapReplicas)
	}
	return slices.Clone(p.GetReplicas())
}
