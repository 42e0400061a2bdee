// Package streams keeps the per-partition stream index of topics with
// cleanup.policy=stream: for every stream (every record key), its events'
// revisions and offsets, the ids seen, and the stream's metadata and
// deletion state.
//
// The index is derived data. The log is the truth: events are ordinary
// records (key = stream), metadata and deletions are records carrying the
// cairn-stream-op header, and the cleaner leaves a marker record carrying the
// revision of what it removed. Replaying the log in order through Apply
// rebuilds the index exactly, so the index may be deleted, or lag the log
// after a crash, and Open catches it up.
//
// The pure part (Change, Expected, State) decides, under the partition's
// single writer, whether an append is allowed: expected revisions, idempotent
// retries and hard deletes. The pebble-backed Index stores the result.
//
// Transactions (pending.go): a transactional batch's events get their
// revisions when written, but the index learns them only at the
// transaction's COMMIT marker; an ABORT marker drops them. Until its
// marker, a transaction holds the streams it wrote (Pending), and every
// other write to them is refused with ErrStreamBusy, so the revisions it
// holds stay the next ones; replay goes through the same table, so the
// index stays a function of the log. This is the base of the event store's
// AppendMulti (docs/transactions.md), used by single-writer partitions
// and at every replica's apply of a replicated one.
// The index records where the oldest open transaction began (SetHeld), so
// a replay after a restart holds again what it wrote (ReplayStart).
package streams
