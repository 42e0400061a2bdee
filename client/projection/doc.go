// Package projection keeps a SQL read model in step with a Cairn topic.
//
// A Runner subscribes to the topic from the checkpoint stored in the
// database and, for each event, runs the handler inside a database/sql
// transaction that also moves the checkpoint past the event. Either both
// commit or neither does, so whatever crashes (the process, the database
// connection, the server), each event's effect on the read model is
// applied exactly once: effectively once delivery.
//
// Checkpoints are rows of cairn_projection_checkpoints(projection,
// partition, next_offset), created when missing. The same SQL runs on
// PostgreSQL and SQLite; only the placeholders differ ($1 or ?), and the
// dialect is taken from the driver unless given.
//
// Each event's transaction first moves its partition's checkpoint, and
// only if the stored one is not already past the event, then runs the
// handler: two runners of one projection by mistake still apply each event
// once, the second waiting on the first's row lock and then skipping.
//
// A handler's error rolls the transaction back and is retried with
// growing pauses; after the last attempt the event is a poison event: it
// is appended to the dead-letter topic "<topic>.dlq" (same stream, type
// and data; metadata naming its source topic, partition and offset, the
// error and the attempts), the checkpoint moves past it in a transaction
// of its own, and the projection goes on. A broken subscription or
// database is not the event's fault: the runner waits, reconnects and
// resumes from the stored checkpoints.
package projection
