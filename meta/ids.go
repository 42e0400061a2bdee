package meta

// Replica ids put the node id above the incarnation: replica id = node id <<
// IncarnationBits | incarnation. Part of the on-disk format (Raft
// configurations, raft-state, raft-meta headers and the meta State hold them).
const (
	IncarnationBits = 20
	// IncarnationMax is the last incarnation a node id can have.
	IncarnationMax = 1<<IncarnationBits - 1
)

// ReplicaID is the replica id of a node's incarnation.
func ReplicaID(nodeID int32, incarnation uint32) uint64 {
	return uint64(nodeID)<<IncarnationBits | uint64(incarnation)
}

// NodeOf is the node id of a replica id.
func NodeOf(replica uint64) int32 { return int32(replica >> IncarnationBits) }

// IncarnationOf is the incarnation of a replica id.
func IncarnationOf(replica uint64) uint32 { return uint32(replica & IncarnationMax) }
