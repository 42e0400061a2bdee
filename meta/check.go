package meta

import (
	"cmp"
	"fmt"

	"slices"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/cluster/topicrules"
)

// CheckState reports the first broken invariant of a state read back from
// disk or received in a snapshot (every state Apply makes keeps them all):
// brokers and topics sorted and unique, valid names, configs and ids, group
// ids unique and below next_group_id, replica sets of known nodes, and
// reassignments and preferred leaders consistent with them.
func CheckState(st *metav1.State) error {
	if st.FormatVersion != FormatVersion {
		return fmt.Errorf("meta state format version %d: this version reads %d", st.FormatVersion, FormatVersion)
	}
	if st.ClusterId == "" {
		return fmt.Errorf("meta state: no cluster id")
	}
	if st.NextGroupId < 1 || st.NextProducerId < 0 {
		return fmt.Errorf("meta state: next group id %d, next producer id %d", st.NextGroupId, st.NextProducerId)
	}
	if err := checkBrokers(st.Brokers); err != nil {
		return fmt.Errorf("meta state: %w", err)
	}
	if err := checkTopics(st); err != nil {
		return fmt.Errorf("meta state: %w", err)
	}
	if err := checkUsers(st.Users); err != nil {
		return fmt.Errorf("meta state: %w", err)
	}
	if err := checkClientQuotas(st); err != nil {
		return fmt.Errorf("meta state: %w", err)
	}
	if err := checkACLs(st); err != nil {
		return fmt.Errorf("meta state: %w", err)
	}
	return nil
}

func checkBrokers(brokers []*metav1.Broker) error {
	if len(brokers) > BrokersMax {
		return fmt.Errorf("%d brokers, at most %d", len(brokers), BrokersMax)
	}
	for i, b := range brokers {
		if i > 0 && brokers[i-1].NodeId >= b.NodeId {
			return fmt.Errorf("brokers out of order at node %d", b.NodeId)
		}
		if b.NodeId < 1 || b.Incarnation < 1 || b.Incarnation > IncarnationMax {
			return fmt.Errorf("broker node %d incarnation %d", b.NodeId, b.Incarnation)
		}
		if b.State < metav1.BrokerState_BROKER_STATE_JOINING || b.State > metav1.BrokerState_BROKER_STATE_REMOVED {
			return fmt.Errorf("broker node %d in state %d", b.NodeId, b.State)
		}
		if r := checkAddresses(b.RaftAddr, b.KafkaAddr, b.HttpAddr, b.Rack); r != nil {
			return fmt.Errorf("broker node %d: %s", b.NodeId, r.message)
		}
		if r := checkListeners(b.Listeners); r != nil {
			return fmt.Errorf("broker node %d: %s", b.NodeId, r.message)
		}
		if len(b.RegistrationNonce) > RegistrationNonceBytesMax {
			return fmt.Errorf("broker node %d: registration nonce of %d bytes, at most %d", b.NodeId, len(b.RegistrationNonce), RegistrationNonceBytesMax)
		}
	}
	return nil
}

func checkTopics(st *metav1.State) error {
	ids := map[[16]byte]bool{}
	groups := map[uint64]bool{}
	for i, t := range st.Topics {
		if i > 0 && strings.Compare(st.Topics[i-1].Name, t.Name) >= 0 {
			return fmt.Errorf("topics out of order or repeated at %q", t.Name)
		}
		if err := topicrules.ValidateName(t.Name); err != nil {
			return err
		}
		if len(t.Id) != 16 || [16]byte(t.Id) == [16]byte{} || ids[[16]byte(t.Id)] {
			return fmt.Errorf("topic %s: id %x missing, zero or not unique", t.Name, t.Id)
		}
		ids[[16]byte(t.Id)] = true
		if _, err := topicrules.PartitionConfig(t.Configs); err != nil {
			return fmt.Errorf("topic %s: %w", t.Name, err)
		}
		if len(t.Partitions) < 1 || len(t.Partitions) > PartitionsPerTopicMax {
			return fmt.Errorf("topic %s: %d partitions", t.Name, len(t.Partitions))
		}
		for j, p := range t.Partitions {
			if err := checkPartition(st, p, int32(j), groups); err != nil {
				return fmt.Errorf("topic %s partition %d: %w", t.Name, j, err)
			}
		}
	}
	if len(groups) > PartitionsMax {
		return fmt.Errorf("%d partitions, at most %d", len(groups), PartitionsMax)
	}
	return nil
}

// checkPartition checks one partition against the state's brokers and the
// group ids seen so far (which it adds to).
func checkPartition(st *metav1.State, p *metav1.Partition, index int32, groups map[uint64]bool) error {
	if p.Index != index {
		return fmt.Errorf("index %d at position %d", p.Index, index)
	}
	if p.GroupId < 1 || p.GroupId >= st.NextGroupId || groups[p.GroupId] {
		return fmt.Errorf("group id %d zero, not below next %d, or not unique", p.GroupId, st.NextGroupId)
	}
	groups[p.GroupId] = true
	if err := checkKnownReplicas(st.Brokers, p.Replicas); err != nil {
		return fmt.Errorf("replicas: %w", err)
	}
	if !slices.Contains(p.Replicas, p.PreferredLeader) {
		return fmt.Errorf("preferred leader %d is not a replica", p.PreferredLeader)
	}
	for _, r := range slices.Concat(p.Replicas, p.TargetReplicas, p.BootstrapReplicas) {
		if PlacementOf(r) > p.Placements {
			return fmt.Errorf("replica %d: placement %d past the %d handed out", r, PlacementOf(r), p.Placements)
		}
	}
	if (p.ReassignmentId == 0) != (len(p.TargetReplicas) == 0) || p.ReassignmentId > st.AppliedIndex {
		return fmt.Errorf("reassignment %d with %d targets", p.ReassignmentId, len(p.TargetReplicas))
	}
	if len(p.TargetReplicas) > 0 {
		if err := checkKnownReplicas(st.Brokers, p.TargetReplicas); err != nil {
			return fmt.Errorf("target replicas: %w", err)
		}
	}
	return nil
}

// checkKnownReplicas: 1 to ReplicasMax replicas on distinct registered
// nodes, each of an incarnation the node has had.
func checkKnownReplicas(brokers []*metav1.Broker, replicas []uint64) error {
	if len(replicas) < 1 || len(replicas) > ReplicasMax {
		return fmt.Errorf("%d replicas", len(replicas))
	}
	for i, r := range replicas {
		if NodeOf(r) < 1 {
			return fmt.Errorf("replica %d: node out of range", r)
		}
		if slices.ContainsFunc(replicas[:i], func(o uint64) bool { return NodeOf(o) == NodeOf(r) }) {
			return fmt.Errorf("node %d twice", NodeOf(r))
		}
		at, ok := slices.BinarySearchFunc(brokers, NodeOf(r), func(b *metav1.Broker, id int32) int { return cmp.Compare(b.NodeId, id) })
		if !ok || IncarnationOf(r) < 1 || IncarnationOf(r) > brokers[at].Incarnation {
			return fmt.Errorf("replica %d: no such incarnation of a registered node", r)
		}
	}
	return nil
}
