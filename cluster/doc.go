// Package cluster holds the broker's topics: their partitions, their configs
// (validated, with Kafka's defaults, durable across restarts), topic creation
// and deletion, producer id allocation, and the background cleaner that
// applies retention and compaction.
//
// # Files
//
// Under the data directory:
//
//	cluster.json               cluster id, node id, next producer id block
//	topics.json                every topic: name, id, partition count, configs
//	<topic>-<partition>/       one partition (see packages partition and storage)
//
// Both JSON files carry a "version" field and are replaced atomically
// (write temp, fsync, rename, fsync directory). A topic is removed from
// topics.json before its partition directories are deleted, and directories
// that no topic owns are removed at start, so a crash mid-deletion never
// resurrects a topic.
//
// # Locks
//
// Cluster.mu guards the topic map and both files. It is held while partitions
// are opened, created or deleted, never while a request waits on a partition.
// Lookups take it briefly and return *Topic values whose partition slice is
// replaced, not mutated, when partitions are added.
package cluster
