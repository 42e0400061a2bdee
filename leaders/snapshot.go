package leaders

import (
	"cmp"
	"slices"
	"time"

	"github.com/cairnlog/cairn/transport"
)

// Snapshot is the whole table at one moment, for status pages.
type Snapshot struct {
	Groups []GroupStatus // by group
	Nodes  []NodeStatus  // the peers heard from, by node
}

// GroupStatus is one group's row.
type GroupStatus struct {
	Group  uint64
	Term   uint64 // the highest known
	Leader uint64 // replica id, 0 when unknown
	Node   uint64 // the leader's node, 0 when unknown
	Local  bool   // a replica of the group is on this node
}

// NodeStatus is one peer's row.
type NodeStatus struct {
	Node        uint64
	Incarnation uint64
	Alive       bool
	HeardAt     time.Time // when its last heartbeat was applied
	Sequence    uint64    // of that heartbeat
	Gaps        uint64    // deltas that arrived after a missing one
}

// Snapshot returns the table's rows at now.
func (t *Table) Snapshot(now time.Time) Snapshot {
	var s Snapshot
	for g, e := range t.view {
		_, local := t.local[g]
		row := GroupStatus{Group: g, Term: e.term, Leader: e.leader, Local: local}
		if e.leader != 0 {
			row.Node = transport.NodeOf(e.leader)
		}
		s.Groups = append(s.Groups, row)
	}
	for id, n := range t.nodes {
		s.Nodes = append(s.Nodes, NodeStatus{Node: id, Incarnation: n.incarnation, Alive: t.Alive(id, now),
			HeardAt: n.heardAt, Sequence: n.sequence, Gaps: n.gaps})
	}
	slices.SortFunc(s.Groups, func(a, b GroupStatus) int { return cmp.Compare(a.Group, b.Group) })
	slices.SortFunc(s.Nodes, func(a, b NodeStatus) int { return cmp.Compare(a.Node, b.Node) })
	return s
}
