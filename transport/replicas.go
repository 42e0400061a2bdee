package transport

import "go.etcd.io/raft/v3/raftpb"

// IncarnationBits is the width of the incarnation in a replica id, and
// NodeBits that of the node id above it: replica id = placement <<
// (IncarnationBits + NodeBits) | node id << IncarnationBits | incarnation
// (design §5.4; meta/ids.go).
const (
	IncarnationBits = 20
	NodeBits        = 24
)

// NodeOf returns the node holding replica id.
func NodeOf(replicaID uint64) uint64 { return replicaID >> IncarnationBits & (1<<NodeBits - 1) }

// NodeSender sends a group's messages to one node: TCP, or a simulated
// network standing in for it.
type NodeSender interface {
	Send(to uint64, group uint64, msgs []*raftpb.Message)
}

// ReplicaSender sends a group's messages, addressed to replica ids as raft
// addresses them, to the nodes holding those replicas: the shape a Raft
// driver sends in (Send(group, msgs)) over TCP's per-node Send.
type ReplicaSender struct{ TCP NodeSender }

// Send hands msgs to TCP.Send, one call per destination node, each in the
// order of msgs. Messages are never changed.
func (s ReplicaSender) Send(group uint64, msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	first := NodeOf(msgs[0].GetTo())
	split := false
	for _, m := range msgs[1:] {
		if NodeOf(m.GetTo()) != first {
			split = true
			break
		}
	}
	if !split { // the common case: one follower's messages
		s.TCP.Send(first, group, msgs)
		return
	}
	var order []uint64
	byNode := map[uint64][]*raftpb.Message{}
	for _, m := range msgs {
		node := NodeOf(m.GetTo())
		if _, ok := byNode[node]; !ok {
			order = append(order, node)
		}
		byNode[node] = append(byNode[node], m)
	}
	for _, node := range order {
		s.TCP.Send(node, group, byNode[node])
	}
}
