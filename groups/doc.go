// Package groups is the consumer-group coordinator: Kafka's classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), the consumer
// protocol of KIP-848 (ConsumerGroupHeartbeat, with server-side "uniform"
// and "range" assignors), and committed offsets.
//
// A group runs one protocol at a time; an empty group changes protocol when
// a member of the other one arrives, keeping its committed offsets.
//
// # Shape
//
// Machine is a pure state machine. Requests and the current time go in;
// replies, state changes and the next deadline it needs come out (Ready,
// NextDeadlineMs). It has no goroutines, clocks or I/O, so every behaviour is
// tested with scripted scenarios in testdata/.
//
// Coordinator is the thin driver: one goroutine owns the Machine, a timer set
// to the Machine's next deadline, and the offsets log. Kafka handlers call it
// from their deferred reply part; a call waits for its answer or its context.
// The timer and every time handed to the Machine come from the cluster's
// env.Clock (Cluster.Env), so a manual clock drives expiry in tests.
//
// # Which groups this node coordinates
//
// As in Kafka, a group's coordinator is the leader of the group's
// __consumer_offsets partition, and that moves between nodes. The driver
// watches the leader view (Leaders: Leader and LeadersChanged, the cluster
// itself unless Config.Leaders names a fake):
//
//   - When this node becomes the serving leader of an offsets partition, it
//     loads the partition: a loader goroutine replays it up to the high
//     watermark into a Machine of its own, whose groups the driver then
//     adopts. Meanwhile the partition's groups get
//     ErrCoordinatorLoadInProgress. An empty partition, and every partition
//     at Open, loads at once (a single node leads every partition, so Open
//     returns with every group restored, as before replication).
//   - When it stops leading (or a new leader epoch begins: another leader may
//     have written), it unloads the partition: its groups are dropped, with
//     members waiting in JoinGroup or SyncGroup answered ErrNotCoordinator.
//     A write that finds the partition deposed (partition.ErrNotLeader)
//     unloads it too, and its request gets ErrNotCoordinator; it is not
//     loaded again until the leader view moves on from that epoch. Writes
//     are appended only in the partition's leader epoch of when its replay
//     began (partition.AppendInTerm), so a change decided on groups loaded
//     then never lands after another leader's writes, even when the
//     leadership was lost and won back before the leader view moved; and
//     the loop follows a leadership change before expiring groups.
//   - Requests for a group whose partition is not loaded get
//     ErrNotCoordinator; ListGroups lists the loaded groups only.
//   - OffsetFetch on a replicated offsets partition is linearizable: after
//     reading the loaded state it confirms with a quorum that this node
//     still leads the partition in the epoch it was loaded in
//     (partition.Linearize, Raft's ReadIndex), else ErrNotCoordinator; a
//     coordinator deposed without knowing it yet never answers an offset a
//     new coordinator replaced.
//
// Locate answers FindCoordinator: the leader's broker, or
// ErrCoordinatorNotAvailable while the partition has none. A group request
// or a lookup first creates __consumer_offsets when it is missing (off the
// driver goroutine: on a cluster that is a proposal to the metadata leader),
// and makes an existing one compacted at most once per process.
//
// # Committed offsets on disk
//
// Offsets live in the internal compacted topic __consumer_offsets, created on
// first use with cleanup.policy=compact, as Kafka keeps them. A group's
// records go to partition abs(javaStringHash(group)) % partitions. Every
// record key and value is in Kafka's own layout (big-endian, strings as an
// int16 length then bytes), encoded with kmsg:
//
//	offset commit key (version 1)     group metadata key (version 2)
//	+---------+-------+-------+----+   +---------+-------+
//	| int16 1 | group | topic |i32 |   | int16 2 | group |
//	+---------+-------+-------+----+   +---------+-------+
//	             partition ----^
//
//	offset commit value (version 3)
//	+---------+--------------+-------------------+----------+------------------+
//	| int16 3 | int64 offset | int32 leaderEpoch | metadata | int64 commitTsMs |
//	+---------+--------------+-------------------+----------+------------------+
//
//	group metadata value (version 3), written when a group becomes empty
//	and, for a KIP-848 group, when its epoch moves past the last recorded
//	+---------+--------------+------------------+----------+--------+-------------------+------------+
//	| int16 3 | protocolType | int32 generation | protocol | leader | int64 stateTimeMs | members=[] |
//	+---------+--------------+------------------+----------+--------+-------------------+------------+
//
// A classic group's protocol is null; a KIP-848 group's is its server
// assignor ("uniform", "range") and its generation its group epoch, which
// is how a load tells the two apart (a classic Kafka consumer's protocol
// type is "consumer" too) and where a loaded consumer group's epoch goes
// on from.
//
// A null value is a tombstone: the offset or the group was deleted or
// expired. A load replays its partition from the log start; compaction keeps
// that replay proportional to the live keys.
//
// # Durability
//
// An OffsetCommit is answered only after its record is committed
// (partition.WaitAppended with all: durable on a single node, held by a
// quorum on a replicated partition), and so are DeleteGroups and
// OffsetDelete after their tombstones. The Machine takes a
// commit or a deletion when its records are appended (so changes to one group
// apply in log order) and not at all when the append fails; an OffsetFetch
// waits until everything appended for the group is committed before answering,
// so no client ever sees an offset a crash could take back. A failed append or
// sync is returned to the caller, never only logged.
//
// Transactional offset commits (TxnOffsetCommit, txnoffsets.go) are
// written as a transactional batch of the producer (its id and epoch, no
// sequence) and held aside until the transaction coordinator's marker
// reaches the offsets partition (TxnMarker): COMMIT makes them the group's
// committed offsets, ABORT drops them. A load replays the same from the
// log: such a batch's offsets wait for their producer's marker. A marker
// committed while the partition loads, past the high watermark the replay
// read to, is held and applied when the load finishes.
//
// Group membership is not persisted: after a restart or a coordinator move
// every group is Empty and its members rejoin (their heartbeats get
// UNKNOWN_MEMBER_ID), as after a coordinator move in Kafka. A KIP-848
// group's epoch is: a heartbeat whose answer may carry an epoch no record
// holds yet writes a group record with it (Generation), every heartbeat is
// answered once what its offsets partition holds is committed (another
// heartbeat's epoch record included; a failed write or wait answers
// COORDINATOR_NOT_AVAILABLE, and a join answered so leaves no member
// behind, as Kafka reverts a failed write's records), and a group loaded
// again goes on above it. Its
// members keep their own member ids across a rejoin, so without that an
// epoch could come back with another assignment, and a late commit of the
// old one be taken.
package groups
