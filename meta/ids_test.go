package meta

import (
	"testing"

	"github.com/cairnlog/cairn/transport"
)

// TestReplicaIDsAgreeWithTransport: the transport routes messages by the
// node part of a replica id without importing this package, so both must
// split ids the same way (the layout is part of the on-disk format).
func TestReplicaIDsAgreeWithTransport(t *testing.T) {
	if IncarnationBits != transport.IncarnationBits {
		t.Fatalf("incarnation bits: meta %d, transport %d", IncarnationBits, transport.IncarnationBits)
	}
	for _, c := range []struct {
		node int32
		inc  uint32
	}{{1, 1}, {3, 2}, {1 << 30, IncarnationMax}} {
		id := ReplicaID(c.node, c.inc)
		if got := transport.NodeOf(id); got != uint64(c.node) || NodeOf(id) != c.node {
			t.Fatalf("replica id %#x: transport node %d, meta node %d, want %d", id, got, NodeOf(id), c.node)
		}
	}
}
