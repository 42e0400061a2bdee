package transport

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestReplicaSender delivers messages addressed to replica ids to the
// nodes holding them, each node's in their order.
func TestReplicaSender(t *testing.T) {
	nodes := []*node{startNode(t, 1, "", nil), startNode(t, 2, "", nil), startNode(t, 3, "", nil)}
	connect(t, nodes...)
	replica := func(node, incarnation uint64) uint64 { return node<<IncarnationBits | incarnation }
	if NodeOf(replica(3, 7)) != 3 {
		t.Fatalf("NodeOf(%d) = %d", replica(3, 7), NodeOf(replica(3, 7)))
	}
	from := replica(1, 1)
	msgs := []*raftpb.Message{
		heartbeat(from, replica(2, 1), 1), heartbeat(from, replica(3, 2), 2),
		heartbeat(from, replica(2, 1), 3), heartbeat(from, replica(3, 2), 4),
	}
	ReplicaSender{TCP: nodes[0].TCP}.Send(5, msgs)
	for _, tc := range []struct {
		n     *node
		terms []uint64
	}{{nodes[1], []uint64{1, 3}}, {nodes[2], []uint64{2, 4}}} {
		d := tc.n.receive(t)
		if d.group != 5 || len(d.msgs) != 2 || d.msgs[0].GetTerm() != tc.terms[0] || d.msgs[1].GetTerm() != tc.terms[1] {
			t.Fatalf("node %d: delivery %+v, want terms %v", tc.n.cfg.NodeID, d, tc.terms)
		}
	}
	ReplicaSender{TCP: nodes[0].TCP}.Send(6, msgs[:1])
	if d := nodes[1].receive(t); d.group != 6 || len(d.msgs) != 1 {
		t.Fatalf("single destination: %+v", d)
	}
}
