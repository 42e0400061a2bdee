// Package transport carries Raft messages and the other node-to-node
// requests (forwarded proposals, heartbeats of the leader table, snapshot
// copies, joins) between Cairn nodes (docs/design/replication.md §3.6).
//
// TCP is the transport over TCP, the seam the replica driver sends
// through (Send, non-blocking, and Unreachable) and receives from (Config.Handler).
// A cluster node's Cluster runs one (package cluster; a simulation puts
// transport/simnet in its place). ReplicaSender adapts it, or any NodeSender, to a Raft
// driver that sends a group's messages addressed to replica ids
// (placement << 44 | node id << 20 | incarnation): it splits them by node.
//
// # Connections
//
// One connection per pair of nodes: the lower node id dials, the higher
// accepts (and refuses a dial from a higher id or an unknown node), so the
// pair never races to two connections. When the accepting side gets a
// second connection from the same node, the newer one wins: the dialler
// dials only when it has none left, so the older one is dead on its side.
// Both sides send a handshake first; a node of another cluster is answered
// (so it logs why) and closed. The first frame is read with a bound of 512
// bytes, so a stranger cannot make a node allocate a full frame. A lost
// connection is redialled after ReconnectDelayMin, doubling up to
// ReconnectDelayMax after each failed attempt, jittered from the env's
// randomness and timed on its clock.
//
// Right after a connection is lost, either side dials the peer's address
// once (a probe, closed before its handshake, which the accept loop drops
// quietly). When that dial, or a redial, is refused (ECONNREFUSED: nothing
// listens there, the process ended) the peer is reported on Gone, once,
// and PeerGone holds until it connects again; a timeout, a reset or an
// accepted probe does not count, so a black hole or a broken link between
// live nodes is never taken for a death.
//
// A join connection (join.go) is the one exception to "unknown nodes are
// refused": a node that knows no member yet (started with --join
// HOST:PORT) dials with a handshake naming no cluster, gets this node's
// handshake back, sends one NodeJoin (at most 4 KiB, within the handshake
// timeout) and reads one NodeJoinResult, which Config.JoinHandler makes;
// the connection then closes and never becomes a peer's. A node without a
// JoinHandler refuses it as a node of another cluster.
//
// With Config.TLS every connection, the join's too, runs over TLS (the
// server side for accepted connections, the client side with the dialled
// host as ServerName for dialled ones; between nodes it is mutual), its
// handshake under the same handshake watchdog; a probe stays plain TCP and
// is dropped at the TLS handshake.
//
// A connection through which nothing arrives for ReadIdleTimeout (5 s) is
// closed and redialled: a stuck peer or a black hole otherwise looks
// connected until TCP gives up, some 15 minutes later. Each side writes a
// keepalive (a RaftBatch of no groups) after a quarter of that without
// other frames; the kernel's TCP keepalive probes an idle connection too,
// and a frame not written within WriteTimeout (10 s) closes it. These
// deadlines are on real time (the kernel's), not the env's clock.
//
// # Goroutines and limits
//
// Per transport: an accept loop, and one goroutine per inbound connection
// while it handshakes (at most HandshakesPendingMax, each with a timeout
// watchdog), which also serves a join connection until the JoinHandler
// returns; a join gives its handshake slot back once its NodeJoin is read,
// so slow joins do not keep peers out, and at most 16 joins run at once,
// 2 from one source host (more are closed unanswered). Per peer: a run goroutine that connects and then writes, and a
// reader while connected. The reader calls the handlers, so a slow handler
// slows that peer down rather than piling up frames. Send marshals the
// messages on the caller's goroutine and queues them; the writer takes
// everything queued since its last write into one frame (up to
// FrameBytesMax), so messages of all groups share frames and syscalls.
// An entry's Data of 4 KiB or more is not copied (sendvec.go): Send
// marshals around it and the writer sends it in place with the frame's
// other pieces (one writev on TCP), since raft never changes an entry's
// Data once made; a leader otherwise copied every entry twice per follower.
// A peer's queue holds at most PeerQueueBytesMax; a Send that does not fit,
// or to a peer that is not connected, is dropped and the peer reported on
// Unreachable (once until a frame reaches it again): raft tolerates loss
// and probes the follower again. A lost connection drops its queue. Close
// and RemovePeer return after every goroutine they stop has ended.
//
// Decoders refuse malformed input with ErrMalformed (never a panic) and
// check every count against the bytes present before allocating for it; a
// frame's buffer is bounded by FrameBytesMax. A Raft message is checked
// before it is unmarshalled: no entry shorter than the 4 bytes of a term
// and an index, no responses (local messages only), so decoding allocates
// at most about 20 times the frame's bytes. A protocol error (frame over
// the bound, malformed batch, a frame type without a handler) closes the
// connection with a warning in the log.
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
// 5 MetaPropose, 6 MetaProposeResult, 7 Join, 8 JoinResult, 9 Handshake,
// 10 ClusterProbe, 11 ClusterProbeResult, 12 NodeJoin, 13 NodeJoinResult,
// 14 Ping, 15 Pong, 16 NodeRequest, 17 NodeResponse.
// Types 3 to 8, 10 to 13, 16 and 17 reach the handlers registered for them
// (Config.Handlers) undecoded. The payloads of 5 to 8, 10 to 13, 16 and 17 are
// defined by the packages that send them. The transport hands
// NodeHeartbeat and the snapshot frames to their handlers undecoded too,
// but their codecs are here (AppendNodeHeartbeat, ParseNodeHeartbeat;
// AppendSnapshotRead, ParseSnapshotRead, AppendSnapshotChunk,
// ParseSnapshotChunk); the heartbeat's meaning is in package leaders.
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
//	 0      4     entry count G (0, and nothing after: a keepalive)
//	then G entries:
//	 0      8     group id (0: the meta group)
//	 8      4     message count M, at least 1
//	then M messages:
//	 0      4     length
//	 4      …     a raftpb.Message, proto-marshalled
//
// A group may have several entries in one batch, in the order they were
// sent; a receiver hands them over in that order. It drops (and counts as
// MessagesMisaddressed) a message whose From is not a replica of the node
// that handshook or whose To is not a replica of itself (NodeOf). The encoding is
// canonical: a payload that parses encodes back to the same bytes.
//
// NodeHeartbeat, a node's liveness and the groups it leads:
//
//	 0      8     sender node id
//	 8      8     sender incarnation
//	16      8     boot id, drawn at random when the sender process starts
//	24      8     sequence, from 1 per sender process (per boot id)
//	32      8     send time, Unix milliseconds of the sender's clock
//	40      1     flags: bit 0 full list, bit 1 the receiver is asked
//	              for its full list next (every other bit 0)
//	41      4     entry count E; exactly E entries follow
//	then E entries, in strictly ascending group order:
//	 0      8     group id
//	 8      8     term
//	16      8     leader replica id, on the sender's node; 0 (deltas
//	              only): the sender no longer leads the group
//
// It is canonical too.
//
// SnapshotRead, a follower installing a snapshot asks the leader's node
// for the data below it (design §2.2), addressed by Kafka offset: the
// follower rebuilds its own segments and indexes from the batches:
//
//	 0      8     group id
//	 8      8     snapshot index, at least 1
//	16      8     snapshot term, at least 1
//	24      8     offset where the copy continues, at a batch boundary
//	32      4     max bytes of data, at least 1 (the first batch is
//	              always sent whole)
//
// SnapshotChunk, the answer, echoing the read:
//
//	 0      8     group id
//	 8      8     snapshot index
//	16      8     snapshot term
//	24      8     offset read at
//	32      1     status: 0 data, 1 the snapshot is no longer the
//	              sender's (start again from the next one raft sends),
//	              2 unavailable now (ask again later)
//	33      8     next offset to read at (status 0; else 0): after the
//	              last batch, or the snapshot's next offset when the copy
//	              is complete; at or above the offset read at
//	41      4     data length N (status 0; else 0); exactly N bytes follow
//	45      N     whole batches as stored, from the offset read at,
//	              below the snapshot's next offset
//
// Both are canonical. The receiver checks the batches themselves
// (raftlog.CheckSnapshotData: CRCs, ascending offsets within the range).
//
// Ping and Pong, a round trip confirming that the peer is alive right now
// (TCP.Ping; Metadata pings a leader's node before naming it). The
// receiver's reader answers a Ping with a Pong echoing it, queued ahead of
// everything else and without reaching a handler; the pinging side waits
// for it within a bound of its own, and concurrent pings of one peer share
// one round trip:
//
//	offset  size  field
//	 0      8     sequence, per peer of the pinging side
//
// Both are canonical. A node of an earlier version has no handler for
// them and closes the connection on a Ping (a protocol error).
//
// NodeRequest and NodeResponse carry a node's front-end requests to
// another node (transaction markers, KIP-890 checks); their payloads
// (request id, status, body) are package cluster's (noderequest.go). A
// node of an earlier version closes the connection on them too.
package transport
