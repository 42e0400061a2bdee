// Package postgres is a change-data-capture connector for PostgreSQL: it
// reads a database's committed changes through logical replication with the
// built-in pgoutput plug-in (github.com/jackc/pglogrepl over pgx v5) and
// appends them to a Log as Debezium JSON envelopes (package cdc renders
// them).
//
// A Connector's Run:
//
//  1. creates its publication (the listed tables, or FOR ALL TABLES) when
//     missing;
//  2. fences its transactional id when the Log is an AtomicLog, then
//     reads from the Log what each partition of its topics holds (the
//     highest cdc position among a partition's last records: cdc.Holdings);
//  3. finds its slot and checks it can give everything after that
//     (checkSlot: a dropped, invalidated or recreated slot stops it with
//     ErrSlotLost), or creates it for a new connector (exporting its
//     snapshot), writing a heartbeat record at the slot's start;
//  4. reads the initial snapshot, or what a crash left of it (snapshot.go:
//     the rows of the published tables in the slot's exported snapshot, in
//     primary-key chunks, the outbox table in write order in one query,
//     SnapshotTablesMax tables at once, progress recorded in the heartbeat
//     topic);
//  5. streams: pgoutput protocol v2 with streaming of in-progress
//     transactions on PostgreSQL 14 and later, v1 before. The assembler
//     (assemble.go, no I/O) turns messages into committed transactions,
//     holding streamed parts per transaction until their commit or abort
//     (subtransactions aborted alone are dropped), at most TxnChangesMax
//     changes in memory;
//  6. for the committed transactions, in commit order (those committed back
//     to back together: up to 1,000 while the next message follows within
//     2 ms): renders their events, drops those a partition already holds,
//     appends the rest (one batch per partition: the position travels in
//     the same atomic append as the events; when they span partitions and
//     the Log is an AtomicLog, as one Kafka transaction), and while the
//     next group is received and rendered waits until they are durable
//     (acks=all) and committed; only then it confirms the last commit LSN
//     to the server, and appends the next group;
//  7. when idle, writes a heartbeat record at the server's position and
//     confirms it, so a slot whose tables see no change never pins WAL.
//
// # What holds after a crash
//
// The server resends from the slot's confirmed position, which never
// passes what the log holds; the holdings skip what each partition has. So
// a committed change is in its partition exactly once, and a key's changes
// are in commit order. Over an AtomicLog (a running node's) a transaction
// touching several partitions is one Kafka transaction: the Log is fenced
// before the holdings are read, so a transaction a crash cut short is
// aborted and not counted as held, and read_committed readers see a
// database transaction whole or not at all. The outbox's stream topic takes
// no transactions: its events follow once the transaction commits. Over a
// plain Log it is one append per partition, and a reader can see it in one
// partition before another. One partition's part of a transaction larger than BatchBytesMax is
// several appends; its positions rise within the transaction, so a restart
// completes it without doubling.
//
// With Config.Outbox, an outbox table's inserts become event-store events
// (cdc.Outbox) in a topic created with cleanup.policy=stream.
package postgres
