package meta

// Replica ids put a placement number above the node id, and the node id
// above the incarnation:
//
//	replica id = placement << PlacementShift | node id << IncarnationBits | incarnation
//
// The placement tells apart the replicas one partition has had on the same
// incarnation of a node. A replica moved off a node loses its directory,
// so one moved back starts with no term, vote or log: under its old id
// Raft would count it as the earlier member (a second vote in a term, a
// quorum without the entries). Each replica a reassignment adds gets the
// partition's next placement (Partition.placements), so a replica id is
// never placed twice. A partition's first replicas have placement 0, so a
// node's own replica id (that of the metadata group) is its placement-0 id.
// Part of the on-disk format (Raft configurations, raft-state, raft-meta
// headers and the meta State hold them).
const (
	IncarnationBits = 20
	// IncarnationMax is the last incarnation a node id can have.
	IncarnationMax = 1<<IncarnationBits - 1
	// NodeBits bound node ids: at most NodeIDMax.
	NodeBits  = 24
	NodeIDMax = 1<<NodeBits - 1
	// PlacementShift is where the placement starts; PlacementMax is the
	// last placement a partition can hand out.
	PlacementShift = IncarnationBits + NodeBits
	PlacementMax   = 1<<(64-PlacementShift) - 1
)

// ReplicaID is the replica id of a node's incarnation, placement 0.
func ReplicaID(nodeID int32, incarnation uint32) uint64 {
	return uint64(nodeID)<<IncarnationBits | uint64(incarnation)
}

// NodeOf is the node id of a replica id.
func NodeOf(replica uint64) int32 { return int32(replica >> IncarnationBits & NodeIDMax) }

// IncarnationOf is the incarnation of a replica id.
func IncarnationOf(replica uint64) uint32 { return uint32(replica & IncarnationMax) }

// PlacementOf is the placement of a replica id.
func PlacementOf(replica uint64) uint32 { return uint32(replica >> PlacementShift) }

// NodeReplicaID is replica's id without its placement: the node
// incarnation it is on.
func NodeReplicaID(replica uint64) uint64 { return replica & (1<<PlacementShift - 1) }

// WithPlacement is the replica id of placement on replica's node
// incarnation.
func WithPlacement(replica uint64, placement uint32) uint64 {
	return NodeReplicaID(replica) | uint64(placement)<<PlacementShift
}
