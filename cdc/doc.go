// Package cdc holds the pure parts of change data capture from PostgreSQL:
// the rendering of logical replication changes as Debezium JSON envelopes
// (values.go for the column types, envelope.go for keys, values, topics and
// record headers), the outbox router's events (outbox.go), the split of a
// transaction into appends (plan.go) and the source position each record carries (position.go),
// from which a restarted connector learns what every partition already holds.
//
// The I/O (the replication connection, the publication and slot, appends to
// partitions) lives in cdc/postgres; nothing here reads a clock, a socket or
// a file, so every rule is tested with tables.
//
// # Position header
//
// Every record a connector appends carries the header cairn-cdc-position,
// "<commit LSN>/<index>" in hexadecimal, e.g. "16B3748/1f": the commit LSN of
// the database transaction (PostgreSQL's commit order) and the index of the
// change within it. Positions order records the way the database committed
// them; a partition's records have non-decreasing positions (a tombstone
// shares its delete's). A transaction's changes for a partition are in one
// append (one batch, written atomically, possibly with the transactions
// committed next to it), so the position travels in the same durable write
// as the events, and a partition's last record says exactly which changes
// it holds.
package cdc
