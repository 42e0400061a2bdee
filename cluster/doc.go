// Package cluster holds the broker's topics: their partitions, their configs
// (validated, with Kafka's defaults, durable across restarts), topic creation
// and deletion, producer id allocation, and the background cleaner that
// applies retention and compaction. The pure rules a topic obeys (names,
// configs) live in the subpackage topicrules, which the metadata group's
// state machine applies too.
//
// # Metadata
//
// The topics, the cluster id and producer id blocks live in the metadata
// Raft group (package controller, meta.Machine as its state machine), here
// with this node as its only voter on a scheduler the cluster owns, which
// sends to no peer (metagroup.go). CreateTopic, DeleteTopic,
// CreatePartitions, SetConfigs and NextProducerID validate as they always
// did, propose a command (the topic id drawn from the env's randomness,
// every replica on this node) and return once this node applied it; the
// group's refusals map to this package's errors. The cluster's node id 0
// is node 1 in the group, whose ids start at 1; clients see Config.NodeID.
//
// The replica manager (replicas.go) makes the open partitions follow the
// applied state: reconcile opens new and grown topics' partitions, applies
// changed configs, and closes and removes dropped topics. It runs in the
// caller after its command applied (so a call returns with its partitions
// open) and on its own goroutine woken by the group's OnApplied, never on
// the group's worker.
//
// # Files
//
// Under the data directory:
//
//	LOCK                       flock'd while a process owns the directory; holds its pid
//	node.json                  this node's identity (package controller)
//	meta/                      the metadata group's log and state snapshots (package controller)
//	<topic>-<partition>/       one partition (see packages partition and storage)
//	<topic>-<partition>.<id>-delete/
//	                           a partition of a topic being deleted (id: 32 hex digits)
//	cluster.json.migrated, topics.json.migrated
//	                           a legacy directory's metadata files, once migrated
//
// A data directory written before the metadata group (cluster.json,
// topics.json, no node.json) is migrated on its first start: the group is
// bootstrapped from the files (controller.MigrateLegacyDir: cluster id,
// topic ids and configs kept, producer ids after the reserved block), and
// only once node.json is written are they renamed to *.migrated. A start
// that finds node.json ignores them and renames any still in place, so a
// crash anywhere redoes the migration identically or finishes it.
// testdata/legacy-v1 is such a directory, written by the code before.
//
// # Deleting and start-up
//
// Only directories marked for deletion are ever removed. DeleteTopic closes
// the topic's partitions, renames their directories to the -delete form and
// syncs the data directory before it proposes the deletion, then removes
// the directories. This order keeps one invariant through any crash: every
// unmarked partition directory belongs to a topic of the applied state. So
// start-up, after the group applied its log, removes marked directories and
// finishes the deletion of a topic the state still holds beside a marked
// directory carrying its id (it marks the rest and proposes the deletion),
// and a partition directory that the state does not own and that is not
// marked (node.json and meta/ lost or restored from an older backup, a
// wrong data directory) makes Open refuse with ErrUnknownPartitions, naming
// the directories; moving them out of the data directory lets it start. A
// new node checks this before it writes its metadata. A topic the state holds
// whose directory is missing (the creation applied, then a crash before the
// directory was made) is opened empty. Creation refuses directories already
// at the new partitions' places, so it never adopts unknown data, and a
// topic deleted and created again gets new, empty directories. The
// invariant holds only while this node proposes every deletion: a replica
// of a topic deleted elsewhere needs a topic-id marker in its directory.
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
// Cluster.admin serialises the calls that change topics, from validation
// through the proposal to the partition work. Cluster.mu guards the topic
// map; reconcile holds it while partitions are opened, created or closed,
// never while a request waits on a partition, and never while a proposal
// waits. Lookups take it briefly and return *Topic values whose partition
// slice is replaced, not mutated, when partitions are added.
package cluster
