package meta

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// Move is one partition's planned reassignment: the meta leader proposes
// BeginReassignment{Partition, Target} for it.
type Move struct {
	Partition *metav1.PartitionRef
	Replicas  []uint64
	Target    []uint64
}

// PlanRemoveNode plans the moves that take every replica off nodeID (under
// any incarnation, so replicas of a lost incarnation move too), before the
// node is removed. Each replica on the node is replaced by the least-loaded
// active broker not already in the set (ties by the rotation of Place); the
// others keep their order and the replacement goes last, so leadership
// passes to a replica that already holds the data. A partition being moved
// already is refused (ErrReassignmentInProgress): wait for it or cancel it
// first. Too few other active brokers is ErrReplicationFactor.
func PlanRemoveNode(st *metav1.State, nodeID int32) ([]Move, error) {
	var brokers []*metav1.Broker
	for _, b := range activeBrokers(st) {
		if b.NodeId != nodeID {
			brokers = append(brokers, b)
		}
	}
	l := countLoads(st)
	var moves []Move
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if !onNode(p.Replicas, nodeID) && !onNode(p.TargetReplicas, nodeID) {
				continue
			}
			if p.ReassignmentId != 0 {
				return nil, fmt.Errorf("%w: %s-%d is being moved by reassignment %d", ErrReassignmentInProgress, t.Name, p.Index, p.ReassignmentId)
			}
			target, err := replaceNode(p.Replicas, nodeID, ranked(brokers, t.Name, p.Index), l.replicas)
			if err != nil {
				return nil, fmt.Errorf("%s-%d: %w", t.Name, p.Index, err)
			}
			moves = append(moves, Move{Partition: &metav1.PartitionRef{Topic: t.Name, TopicId: slices.Clone(t.Id), Partition: p.Index},
				Replicas: slices.Clone(p.Replicas), Target: target})
		}
	}
	return moves, nil
}

// replaceNode is replicas without nodeID's replica and with the
// least-loaded candidate not in the set added last; it counts the move in load.
func replaceNode(replicas []uint64, nodeID int32, cands []candidate, load map[int32]int) ([]uint64, error) {
	target := slices.DeleteFunc(slices.Clone(replicas), func(r uint64) bool { return NodeOf(r) == nodeID })
	cands = slices.DeleteFunc(cands, func(c candidate) bool { return onNode(target, c.broker.NodeId) })
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: no other active broker to take a replica of node %d", ErrReplicationFactor, nodeID)
	}
	to := slices.MinFunc(cands, byLoad(load)).broker
	load[to.NodeId]++
	load[nodeID]--
	return append(target, ReplicaID(to.NodeId, to.Incarnation)), nil
}

// PlanPreferredLeaders balances preferred leaders over the active brokers
// with as few changes as it can: a preference on a node that is not an
// active broker at that incarnation moves to the partition's least-leading
// active replica, and while a preferred leader sits on a node leading at
// least two more partitions than another active replica of its partition,
// the preference moves there. Every such move lowers the sum of squared
// leader counts, so the passes end; they are bounded all the same. The
// result, by topic and partition, is the input of SetPreferredLeaders
// (empty when balanced).
func PlanPreferredLeaders(st *metav1.State) []*metav1.PreferredLeader {
	current := map[int32]uint32{}
	for _, b := range activeBrokers(st) {
		current[b.NodeId] = b.Incarnation
	}
	eligible := func(r uint64) bool { inc, ok := current[NodeOf(r)]; return ok && inc == IncarnationOf(r) }
	counts := countLoads(st).leaders
	type change struct {
		topic     *metav1.Topic
		partition *metav1.Partition
		leader    uint64
	}
	var changes []*change
	byPartition := map[*metav1.Partition]*change{}
	partitions := 0
	for _, t := range st.Topics {
		partitions += len(t.Partitions)
	}
	for pass := 0; pass <= partitions; pass++ {
		moved := false
		for _, t := range st.Topics {
			for _, p := range t.Partitions {
				c := byPartition[p]
				if c == nil {
					c = &change{topic: t, partition: p, leader: p.PreferredLeader}
				}
				to, ok := betterLeader(p.Replicas, c.leader, counts, eligible)
				if !ok {
					continue
				}
				counts[NodeOf(c.leader)]--
				counts[NodeOf(to)]++
				c.leader, moved = to, true
				if byPartition[p] == nil {
					byPartition[p] = c
					changes = append(changes, c)
				}
			}
		}
		if !moved {
			break
		}
	}
	var out []*metav1.PreferredLeader
	for _, c := range changes {
		if c.leader != c.partition.PreferredLeader {
			out = append(out, &metav1.PreferredLeader{Replica: c.leader, Partition: &metav1.PartitionRef{
				Topic: c.topic.Name, TopicId: slices.Clone(c.topic.Id), Partition: c.partition.Index}})
		}
	}
	slices.SortStableFunc(out, func(a, b *metav1.PreferredLeader) int {
		return cmp.Or(strings.Compare(a.Partition.Topic, b.Partition.Topic), cmp.Compare(a.Partition.Partition, b.Partition.Partition))
	})
	return out
}

// betterLeader is the replica the preference of a partition led by leader
// should move to, if any: the eligible replica leading fewest (first in
// replica order among equals), when leader is not eligible or leads at
// least two more.
func betterLeader(replicas []uint64, leader uint64, counts map[int32]int, eligible func(uint64) bool) (uint64, bool) {
	var best uint64
	found := false
	for _, r := range replicas {
		if r != leader && eligible(r) && (!found || counts[NodeOf(r)] < counts[NodeOf(best)]) {
			best, found = r, true
		}
	}
	if !found {
		return 0, false
	}
	return best, !eligible(leader) || counts[NodeOf(leader)]-counts[NodeOf(best)] >= 2
}

// Transfer is a leadership transfer: the group's leader hands over to To.
type Transfer struct {
	GroupID  uint64
	From, To uint64
}

// PlanLeaderTransfers lists, by topic and partition, the groups whose
// leader (leaders: group id → leader replica id, as the leader table knows
// it) is not their preferred leader while the preferred one is the current
// incarnation of an active broker: rebalance-leaders transfers those.
func PlanLeaderTransfers(st *metav1.State, leaders map[uint64]uint64) []Transfer {
	current := map[int32]uint32{}
	for _, b := range activeBrokers(st) {
		current[b.NodeId] = b.Incarnation
	}
	var out []Transfer
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			leader, known := leaders[p.GroupId]
			inc, active := current[NodeOf(p.PreferredLeader)]
			if !known || leader == p.PreferredLeader || !active || inc != IncarnationOf(p.PreferredLeader) {
				continue
			}
			out = append(out, Transfer{GroupID: p.GroupId, From: leader, To: p.PreferredLeader})
		}
	}
	return out
}
