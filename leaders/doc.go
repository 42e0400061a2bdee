// Package leaders keeps a node's leader table: for every partition group
// of the cluster, who leads it and in which term, so the Kafka front end
// answers Metadata (leader, leader epoch), FindCoordinator, and routes
// event-store requests, without Raft traffic per leadership change
// (docs/design/replication.md §6.3).
//
// Table is the pure core: inputs and the time in, changes out, no
// goroutines, clocks or I/O.
//
//   - Local groups come from replica.Leadership (SetLocal, RemoveLocal).
//     Only a ready leader (it applied its term's first entry) is in the
//     table and advertised; a follower's term clears older leaders.
//   - Remote groups come from NodeHeartbeat frames (Receive; the payload
//     codec is in package transport). A node speaks only for the groups
//     it leads: a full heartbeat lists all of them, a delta the changes,
//     leader 0 meaning "no longer leads"; an entry naming a leader on
//     another node than the sender is dropped (the codec refuses it too).
//   - Merge rules: a higher term always wins; in the known term a leader
//     fills an unknown one but never replaces a known one (raft elects one
//     leader per term); a clear clears only a leader on the sender's node.
//     Terms are kept when leaders are cleared, so older news stays stale;
//     a group's row goes only when the group is deleted (Forget).
//   - Per peer: a heartbeat of an older incarnation is ignored, a new
//     incarnation clears the old one's leaders. Each process draws a boot
//     id (New, from the env's Rand) and counts its sequence from 1: a new
//     boot id of the same incarnation (a restart) clears the old process's
//     leaders, starts the sequence afresh, gets the peer this node's full
//     list and asks for its own (its first, full heartbeat may be lost). A
//     delta not newer than the last heartbeat applied is not applied, but
//     keeps the peer alive like any heartbeat of its current incarnation;
//     a skipped sequence is counted (NodeStatus.Gaps).
//   - Liveness: a peer silent for Config.LivenessTimeout is dead (Expire,
//     and Receive of a heartbeat that arrives later than that): Alive
//     reports false and its leaders are cleared until it is heard again.
//     A peer that comes alive (first heard, back, a new incarnation) gets
//     a full heartbeat next (ForPeer): it likely missed deltas. One that
//     came alive by a delta is asked for its full list (WantFull on every
//     heartbeat to it until that list comes), which heals a one-way loss.
//   - Sending (NextSend, Outgoing): the first heartbeat is full, at once;
//     then a full one every FullInterval, a delta of the changes DeltaGap
//     after the last heartbeat (changes in between share it), and an empty
//     delta every Interval otherwise, which keeps the node alive at its
//     peers. AsFull turns a delta into a full heartbeat of the same
//     sequence for a peer that may have missed some.
//
// Leaders wraps a Table for concurrent use and drives it: Run, one
// goroutine timed on the env's clock, expires silent peers and sends the
// heartbeat due to each peer through a Sender (transport.TCP.SendFrame;
// the same delta to most, the full list to a peer that is new, came
// alive, or whose last frame was dropped — PeerLost, which the wiring
// also calls when the transport reports a peer unreachable). A local
// change wakes Run, so its delta leaves DeltaGap after the last
// heartbeat. The front end reads Leader, Alive and Snapshot (a lookup
// expires silent peers itself, so it never answers with a dead node's
// leader), and waits for a change on Changed (a channel closed and
// replaced at each change of a leader, a term or a node's liveness).
// FrameHandler is the transport handler of FrameNodeHeartbeat.
package leaders
