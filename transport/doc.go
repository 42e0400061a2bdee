// Package transport carries Raft messages, and later the other node-to-node
// requests, between Cairn nodes (docs/design/replication.md §3.6).
//
// So far it holds the wire format: frames, the handshake and the RaftBatch
// payload, with decoders that refuse malformed input with ErrMalformed
// (never a panic) and allocate only what the bytes received can fill.
//
// # Wire format
//
// Everything below is part of the protocol; integers are big-endian and
// fixed width. A connection carries frames back to back:
//
//	offset  size  field
//	 0      4     length L of type and payload, in [1, FrameBytesMax]
//	 4      1     frame type
//	 5      L-1   payload
//
// The reader checks L against its bound before reading further, and closes
// the connection on a frame over it (a stream cannot be resynchronised).
// Types: 1 RaftBatch, 2 NodeHeartbeat, 3 SnapshotRead, 4 SnapshotChunk,
// 5 MetaPropose, 6 MetaProposeResult, 7 Join, 8 JoinResult, 9 Handshake.
// Types 2 to 8 are reserved for the frames the design gives them; their
// payloads are defined by the packages that send them.
//
// Handshake, the first frame each way:
//
//	 0      4     magic "CRNT"
//	 4      2     protocol version, 1
//	 6      8     node id
//	14      8     incarnation
//	22      1     cluster id length N, at most 255
//	23      N     cluster id
//
// RaftBatch, the Raft messages of many groups in one frame:
//
//	 0      4     entry count G, at least 1
//	then G entries:
//	 0      8     group id (0: the meta group)
//	 8      4     message count M, at least 1
//	then M messages:
//	 0      4     length
//	 4      …     a raftpb.Message, proto-marshalled
//
// A group may have several entries in one batch, in the order they were
// sent; a receiver hands them over in that order. The encoding is
// canonical: a payload that parses encodes back to the same bytes.
package transport
