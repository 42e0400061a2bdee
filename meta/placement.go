package meta

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// Placement is what the meta leader computes before it proposes a
// CreateTopic, CreatePartitions or a reassignment. It is pure and reads a
// state it does not modify: the same state and arguments give the same
// replica sets on every node, so a leader change mid-way changes nothing.

// ErrReplicationFactor: more replicas asked for than there are active
// brokers, or fewer than one active broker at all.
var ErrReplicationFactor = errors.New("invalid replication factor")

// ReplicationFactorDefault is the replication factor of a topic created
// without one (Kafka's -1): three copies, or as many as there are active
// brokers when fewer.
const ReplicationFactorDefault = 3

// loads counts, per node id, the partitions with a replica (current or
// target) on it, and those whose preferred leader is on it.
type loads struct {
	replicas map[int32]int
	leaders  map[int32]int
}

func countLoads(st *metav1.State) loads {
	l := loads{replicas: map[int32]int{}, leaders: map[int32]int{}}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			for _, r := range p.Replicas {
				l.replicas[NodeOf(r)]++
			}
			for _, r := range p.TargetReplicas {
				if !slices.Contains(p.Replicas, r) {
					l.replicas[NodeOf(r)]++
				}
			}
			l.leaders[NodeOf(p.PreferredLeader)]++
		}
	}
	return l
}

// activeBrokers are the ACTIVE brokers, by node id.
func activeBrokers(st *metav1.State) []*metav1.Broker {
	var out []*metav1.Broker
	for _, b := range st.Brokers {
		if b.State == metav1.BrokerState_BROKER_STATE_ACTIVE {
			out = append(out, b)
		}
	}
	return out
}

// rotation is where a partition's tie break starts among n brokers: the
// topic's hash plus the partition, so partitions of equal load spread over
// the brokers, and topics of one partition each do not all start on the
// first broker. FNV-1a, not a seeded map hash: every node must agree.
func rotation(topic string, partition int32, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic)) // never fails
	return int((h.Sum32() + uint32(partition)) % uint32(n))
}

// candidate is an active broker with its tie-break rank for one partition.
type candidate struct {
	broker *metav1.Broker
	rank   int
}

// ranked lists brokers with their rank for (topic, partition): positions
// counted from the rotation, so rank 0 is the broker the rotation picks.
func ranked(brokers []*metav1.Broker, topic string, partition int32) []candidate {
	if len(brokers) == 0 {
		return nil
	}
	rot := rotation(topic, partition, len(brokers))
	out := make([]candidate, len(brokers))
	for i, b := range brokers {
		out[i] = candidate{broker: b, rank: (i - rot + len(brokers)) % len(brokers)}
	}
	return out
}

// byLoad orders candidates least loaded first, then by rank.
func byLoad(load map[int32]int) func(a, b candidate) int {
	return func(a, b candidate) int {
		return cmp.Or(cmp.Compare(load[a.broker.NodeId], load[b.broker.NodeId]), cmp.Compare(a.rank, b.rank))
	}
}

// Place chooses replica sets for count new partitions of topic, numbered
// from first. replicationFactor < 1 asks for the default, min(3, active
// brokers). Loads count what the state holds plus what this call placed
// before. Each partition's preferred leader (first in its set) is the
// active broker leading fewest partitions, then holding fewest replicas;
// its other replicas are the least-loaded other active brokers (fewest
// replicas, then fewest leaders). Ties are broken by a rotation on the
// topic's hash and the partition. Leaders come first because they do the
// work: preferred leaders stay within one partition of each other, replica
// counts within two (keeping both within one is not always possible).
func Place(st *metav1.State, topic string, first, count, replicationFactor int32) ([]*metav1.ReplicaSet, error) {
	if first < 0 || count < 1 || int64(first)+int64(count) > PartitionsPerTopicMax {
		return nil, fmt.Errorf("%w: partitions %d to %d, at most %d", ErrInvalidPartitions, first, int64(first)+int64(count)-1, PartitionsPerTopicMax)
	}
	brokers := activeBrokers(st)
	if replicationFactor < 1 {
		replicationFactor = int32(min(ReplicationFactorDefault, len(brokers)))
	}
	if replicationFactor < 1 || int(replicationFactor) > len(brokers) || replicationFactor > ReplicasMax {
		return nil, fmt.Errorf("%w: %d replicas on %d active brokers", ErrReplicationFactor, replicationFactor, len(brokers))
	}
	l := countLoads(st)
	out := make([]*metav1.ReplicaSet, 0, count)
	for p := first; p < first+count; p++ {
		chosen := choose(ranked(brokers, topic, p), int(replicationFactor), l)
		set := &metav1.ReplicaSet{}
		for _, c := range chosen {
			l.replicas[c.broker.NodeId]++
			set.Replicas = append(set.Replicas, ReplicaID(c.broker.NodeId, c.broker.Incarnation))
		}
		l.leaders[chosen[0].broker.NodeId]++
		out = append(out, set)
	}
	return out, nil
}

// choose picks n of cands, the preferred leader first.
func choose(cands []candidate, n int, l loads) []candidate {
	leader := slices.MinFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(l.leaders[a.broker.NodeId], l.leaders[b.broker.NodeId]),
			cmp.Compare(l.replicas[a.broker.NodeId], l.replicas[b.broker.NodeId]), cmp.Compare(a.rank, b.rank))
	})
	rest := slices.DeleteFunc(slices.Clone(cands), func(c candidate) bool { return c.broker == leader.broker })
	slices.SortStableFunc(rest, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(l.replicas[a.broker.NodeId], l.replicas[b.broker.NodeId]),
			cmp.Compare(l.leaders[a.broker.NodeId], l.leaders[b.broker.NodeId]), cmp.Compare(a.rank, b.rank))
	})
	return append([]candidate{leader}, rest[:n-1]...)
}
