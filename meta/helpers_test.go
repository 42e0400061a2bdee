package meta

import (
	"fmt"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// Replica ids of the fixture's brokers at incarnation 1.
var (
	r1 = ReplicaID(1, 1)
	r2 = ReplicaID(2, 1)
	r3 = ReplicaID(3, 1)
	r4 = ReplicaID(4, 1)
	r5 = ReplicaID(5, 1)
)

func topicID(b byte) []byte {
	id := make([]byte, 16)
	id[15] = b
	return id
}

func sets(replicas ...[]uint64) []*metav1.ReplicaSet {
	out := make([]*metav1.ReplicaSet, len(replicas))
	for i, r := range replicas {
		out[i] = &metav1.ReplicaSet{Replicas: r}
	}
	return out
}

func ref(topic string, partition int32) *metav1.PartitionRef {
	return &metav1.PartitionRef{Topic: topic, Partition: partition}
}

func register(node int32, incarnation uint32, addr string) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_RegisterBroker{RegisterBroker: &metav1.RegisterBroker{
		NodeId: node, Incarnation: incarnation, RaftAddr: addr, KafkaAddr: addr}}}
}

func brokerState(node int32, incarnation uint32, s metav1.BrokerState) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_SetBrokerState{SetBrokerState: &metav1.SetBrokerState{
		NodeId: node, Incarnation: incarnation, State: s}}}
}

func createTopic(name string, id []byte, configs map[string]string, partitions ...[]uint64) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_CreateTopic{CreateTopic: &metav1.CreateTopic{
		Name: name, Id: id, Configs: configs, Partitions: sets(partitions...)}}}
}

func deleteTopic(name string, id []byte) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_DeleteTopic{DeleteTopic: &metav1.DeleteTopic{Name: name, Id: id}}}
}

func createPartitions(name string, id []byte, partitions ...[]uint64) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_CreatePartitions{CreatePartitions: &metav1.CreatePartitions{
		Name: name, Id: id, Partitions: sets(partitions...)}}}
}

func setConfigs(name string, configs map[string]string, force bool) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_SetTopicConfigs{SetTopicConfigs: &metav1.SetTopicConfigs{
		Name: name, Configs: configs, ForceLeaveStream: force}}}
}

func allocate(node, count int32) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_AllocateProducerIds{AllocateProducerIds: &metav1.AllocateProducerIDs{
		NodeId: node, Count: count}}}
}

func begin(r *metav1.PartitionRef, target ...uint64) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_BeginReassignment{BeginReassignment: &metav1.BeginReassignment{
		Partition: r, TargetReplicas: target}}}
}

func complete(r *metav1.PartitionRef, id uint64) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_CompleteReassignment{CompleteReassignment: &metav1.CompleteReassignment{
		Partition: r, ReassignmentId: id}}}
}

func cancel(r *metav1.PartitionRef, id uint64) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_CancelReassignment{CancelReassignment: &metav1.CancelReassignment{
		Partition: r, ReassignmentId: id}}}
}

func preferred(pairs ...any) *metav1.Command {
	c := &metav1.SetPreferredLeaders{}
	for i := 0; i < len(pairs); i += 2 {
		c.Leaders = append(c.Leaders, &metav1.PreferredLeader{Partition: pairs[i].(*metav1.PartitionRef), Replica: pairs[i+1].(uint64)})
	}
	return &metav1.Command{Command: &metav1.Command_SetPreferredLeaders{SetPreferredLeaders: c}}
}

// fixtureReassignment is the id of the reassignment running on orders-2 in
// the fixture.
const fixtureReassignment = 13

// fixture is a machine with brokers 1-3 active, 4 joining, 5 removed (all at
// incarnation 1); topic "orders" (id 1, three partitions on 1-3, orders-2
// being moved to 3,1 by reassignment fixtureReassignment) and the stream
// topic "events" (id 2, one partition on 1,2). It is built by applying
// commands, each of which must be accepted.
func fixture(t *testing.T) *Machine {
	t.Helper()
	m, err := newFixture()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newFixture() (*Machine, error) {
	st, err := Bootstrap("cluster-a", []*metav1.Broker{
		{NodeId: 1, RaftAddr: "n1:9093"}, {NodeId: 2, RaftAddr: "n2:9093"}, {NodeId: 3, RaftAddr: "n3:9093"}}, 1)
	if err != nil {
		return nil, err
	}
	m, err := New(st)
	if err != nil {
		return nil, err
	}
	steps := []*metav1.Command{
		register(4, 0, "n4:9093"),
		register(5, 0, "n5:9093"),
		brokerState(5, 1, metav1.BrokerState_BROKER_STATE_REMOVED),
		createTopic("orders", topicID(1), map[string]string{"retention.ms": "1000"}, []uint64{r1, r2, r3}, []uint64{r2, r3, r1}, []uint64{r3, r1, r2}),
		createTopic("events", topicID(2), map[string]string{"cleanup.policy": "stream"}, []uint64{r1, r2}),
		allocate(1, ProducerIDBlock),
	}
	for index := uint64(2); index <= fixtureReassignment; index++ {
		var c *metav1.Command // Raft's own entries fill the gap
		switch {
		case index == fixtureReassignment:
			c = begin(ref("orders", 2), r3, r1)
		case int(index-2) < len(steps):
			c = steps[index-2]
		}
		if err := ResultError(m.Apply(index, c)); err != nil {
			return nil, fmt.Errorf("fixture entry %d %v: %w", index, c, err)
		}
	}
	return m, nil
}

func mustApply(t *testing.T, m *Machine, index uint64, c *metav1.Command) *metav1.Result {
	t.Helper()
	res := m.Apply(index, c)
	if err := ResultError(res); err != nil {
		t.Fatalf("entry %d %v: %v", index, c, err)
	}
	return res
}

// unchangedBut reports whether after equals before but for the applied index.
func unchangedBut(before, after *metav1.State) bool {
	after = proto.CloneOf(after)
	after.AppliedIndex = before.AppliedIndex
	return proto.Equal(before, after)
}
