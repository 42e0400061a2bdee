// Package cluster holds the broker's topics: their partitions, their configs
// (validated, with Kafka's defaults, durable across restarts), topic creation
// and deletion, producer id allocation, and the background cleaner that
// applies retention and compaction. The pure rules a topic obeys (names,
// configs) live in the subpackage topicrules, which the metadata group's
// state machine applies too.
//
// # Files
//
// Under the data directory:
//
//	LOCK                       flock'd while a process owns the directory; holds its pid
//	cluster.json               cluster id, node id, next producer id block
//	topics.json                every topic: name, id, partition count, configs
//	<topic>-<partition>/       one partition (see packages partition and storage)
//	<topic>-<partition>.<id>-delete/
//	                           a partition of a topic being deleted (id: 32 hex digits)
//
// Both JSON files carry a "version" field and are replaced atomically
// (write temp, fsync, rename, fsync directory); cluster.json is first
// written once start-up's checks have passed.
//
// # Deleting
//
// Only directories marked for deletion are ever removed. DeleteTopic closes
// the topic's partitions, renames their directories to the -delete form and
// syncs the data directory, then removes the topic from topics.json, then
// the directories. Start-up removes marked directories, and finishes the
// deletion of a topic still listed with a marked directory carrying its id.
// A partition directory that is neither owned by a listed topic nor marked
// (topics.json lost or restored from an older backup, a wrong data
// directory) makes Open refuse with ErrUnknownPartitions, naming the
// directories; moving them out of the data directory lets it start. Topic
// creation refuses to open a partition over an existing directory, so
// undoing a failed creation only ever removes what it created.
//
// # Environment
//
// Open takes an env.Env: the data directory lives on its filesystem, every
// partition opens with it, the cleaner runs at a fixed rate on its clock,
// and the cluster id and topic ids are drawn from its randomness. The group
// coordinator takes the same Env from Cluster.Env.
//
// # Locks
//
// Cluster.mu guards the topic map and both files. It is held while partitions
// are opened, created or deleted, never while a request waits on a partition.
// Lookups take it briefly and return *Topic values whose partition slice is
// replaced, not mutated, when partitions are added.
package cluster
