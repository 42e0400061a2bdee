package cluster

import (
	"slices"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
)

// planRefill moves the replicas of a node's replaced incarnation to its
// current one, in the same place, only once that node is ACTIVE and only
// for partitions not moving already.
func TestPlanRefill(t *testing.T) {
	r := meta.ReplicaID
	broker := func(node int32, inc uint32, s metav1.BrokerState) *metav1.Broker {
		return &metav1.Broker{NodeId: node, Incarnation: inc, State: s}
	}
	active, joining := metav1.BrokerState_BROKER_STATE_ACTIVE, metav1.BrokerState_BROKER_STATE_JOINING
	st := &metav1.State{
		Brokers: []*metav1.Broker{broker(1, 1, active), broker(2, 1, active), broker(3, 2, active), broker(4, 3, joining)},
		Topics: []*metav1.Topic{{Name: "a", Partitions: []*metav1.Partition{
			{Index: 0, Replicas: []uint64{r(3, 1), r(1, 1), r(2, 1)}},                          // refilled
			{Index: 1, Replicas: []uint64{r(1, 1), r(2, 1), r(3, 2)}},                          // current already
			{Index: 2, Replicas: []uint64{r(1, 1), r(3, 1)}, ReassignmentId: 9},                // moving
			{Index: 3, Replicas: []uint64{r(1, 1), r(4, 1), r(2, 1)}},                          // node 4 not active yet
			{Index: 4, Replicas: []uint64{r(2, 1), r(3, 1)}, TargetReplicas: nil, GroupId: 12}, // refilled
		}}},
	}
	moves := planRefill(st)
	if len(moves) != 2 {
		t.Fatalf("%d moves, want 2: %v", len(moves), moves)
	}
	want := map[int32][]uint64{0: {r(3, 2), r(1, 1), r(2, 1)}, 4: {r(2, 1), r(3, 2)}}
	for _, m := range moves {
		if m.Partition.Topic != "a" || !slices.Equal(m.Target, want[m.Partition.Partition]) {
			t.Fatalf("move of %s-%d to %x, want %x", m.Partition.Topic, m.Partition.Partition, m.Target, want[m.Partition.Partition])
		}
	}
	st.Brokers[2].State = metav1.BrokerState_BROKER_STATE_JOINING
	if moves := planRefill(st); len(moves) != 0 {
		t.Fatalf("moves onto a JOINING incarnation: %v", moves)
	}
}
