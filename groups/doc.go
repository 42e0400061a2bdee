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
//	+---------+--------------+------------------+----------+--------+-------------------+------------+
//	| int16 3 | protocolType | int32 generation | protocol | leader | int64 stateTimeMs | members=[] |
//	+---------+--------------+------------------+----------+--------+-------------------+------------+
//
// A null value is a tombstone: the offset or the group was deleted or
// expired. On start the Coordinator replays the whole topic; compaction keeps
// that replay proportional to the live keys.
//
// # Durability
//
// An OffsetCommit is answered only after its record is durable, and so are
// DeleteGroups and OffsetDelete after their tombstones. The Machine takes a
// commit or a deletion when its records are appended (so changes to one group
// apply in log order) and not at all when the append fails; an OffsetFetch
// waits until everything appended for the group is durable before answering,
// so no client ever sees an offset a crash could take back. A failed append or
// sync is returned to the caller, never only logged.
//
// Group membership is not persisted: after a restart every group is Empty
// and its members rejoin (their heartbeats get UNKNOWN_MEMBER_ID), as after
// a coordinator move in Kafka.
package groups
