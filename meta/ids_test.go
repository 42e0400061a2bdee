package meta

import (
	"testing"

	"github.com/cairnlog/cairn/transport"
)

// TestReplicaIDsAgreeWithTransport: the transport routes messages by the
// node part of a replica id without importing this package, so both must
// split ids the same way (the layout is part of the on-disk format),
// whatever the placement above the node.
func TestReplicaIDsAgreeWithTransport(t *testing.T) {
	if IncarnationBits != transport.IncarnationBits || NodeBits != transport.NodeBits {
		t.Fatalf("bits: meta %d/%d, transport %d/%d", IncarnationBits, NodeBits, transport.IncarnationBits, transport.NodeBits)
	}
	for _, c := range []struct {
		node      int32
		inc       uint32
		placement uint32
	}{{1, 1, 0}, {3, 2, 1}, {NodeIDMax, IncarnationMax, PlacementMax}, {7, 1, 12345}} {
		base := ReplicaID(c.node, c.inc)
		id := WithPlacement(base, c.placement)
		if got := transport.NodeOf(id); got != uint64(c.node) || NodeOf(id) != c.node {
			t.Fatalf("replica id %#x: transport node %d, meta node %d, want %d", id, got, NodeOf(id), c.node)
		}
		if IncarnationOf(id) != c.inc || PlacementOf(id) != c.placement || NodeReplicaID(id) != base {
			t.Fatalf("replica id %#x: incarnation %d placement %d base %#x, want %d %d %#x",
				id, IncarnationOf(id), PlacementOf(id), NodeReplicaID(id), c.inc, c.placement, base)
		}
	}
}
