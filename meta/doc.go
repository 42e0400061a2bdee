// Package meta is the metadata group's state machine: brokers, topics, their
// configs and replica placement, Raft group ids, producer id blocks and the
// SASL users' SCRAM credentials (users.go; keys only, never a password),
// the ACLs (package acl's bindings, checked with acl.Validate on apply and
// restore) and the client quotas (package quota's entities and values,
// quotas.go), as every node of the cluster applies them from the metadata
// group's log.
//
// # The machine
//
// Machine.Apply(index, command) is pure and deterministic: it reads no
// clock, draws no randomness, iterates no map into its output, and every
// node applying the same entries holds a byte-identical State
// (Machine.Snapshot marshals deterministically). Everything random or
// placement-dependent (topic ids, replica sets) is chosen by the meta
// leader before it proposes, with the helpers of this package; the counters
// (group ids, producer ids, incarnations) are allocated by Apply itself, so
// two proposals made at once never collide on them. Apply checks each
// command again (topic names and configs with package cluster/topicrules,
// partition counts, replica sets on active brokers at their current
// incarnation, ids not reused) and refuses a bad one with a
// metav1.ErrorCode and a message, changing nothing but the applied index;
// ResultError turns a refusal into an error wrapping one of this package's
// sentinels. Limits (PartitionsPerTopicMax, ReplicasMax, ...) are constants,
// not configuration, since nodes must agree on them.
//
// The state and commands are protobuf (api/cairn/meta/v1, an on-disk
// format). Restore, like New, checks a state as a whole (CheckState) before
// taking it: sorted, unique brokers and topics, valid names and configs,
// group ids unique and allocated, replicas of known incarnations,
// consistent reassignments and preferred leaders.
//
// # Identities
//
// A replica id is placement << 44 | node id << 20 | incarnation (ids.go;
// ReplicaID is placement 0). A node that lost its data registers again and
// gets a new incarnation, so it never votes under its old identity; a
// replica a reassignment adds gets its partition's next placement, so a
// replica moved off a node and back is a new member too, as is one renewed
// on its node after its copy was damaged (BeginReassignment.RenewReplicas,
// a move cancelled only once that node incarnation is replaced or removed
// (StaleRenewal), so the damaged id never returns); brokers are never deleted from the state, only
// REMOVED, so an incarnation is never handed out twice. Group ids start at 1
// (0 is the metadata group) and are never reused.
//
// # Before proposing
//
// The meta leader computes placement with pure functions of the state:
// Place (replication factor default min(3, active brokers); preferred
// leaders, first in each set, spread to within one partition per active
// broker, replicas to within two; ties broken by a rotation on the topic's
// FNV-1a hash plus the partition), PlanRemoveNode (the moves that take
// every replica off a node), PlanPreferredLeaders (SetPreferredLeaders that
// spread preferences over active brokers) and PlanLeaderTransfers (groups
// to hand back to their preferred leader). Nodes ask for producer ids in
// blocks of ProducerIDBlock.
//
// # Bootstrap and migration
//
// Bootstrap is the first state of a new cluster (its initial voters ACTIVE
// at incarnation 1). MigrateLegacy turns the cluster.json and topics.json
// of a data directory written by a single node into the bootstrap state of
// a one-node cluster: cluster id, topic ids and configs kept, group ids
// given in order (topics by name, partitions in order), producer ids
// continuing after the block cluster.json reserved. It is pure, so a
// migration interrupted by a crash and redone gives the same state.
//
// # Reading
//
// The accessors (Topic, TopicByID, Broker, Group, PartitionsOf,
// PartitionsOfNode) return copies. A Machine is not safe for concurrent
// use: the meta group's apply loop owns it.
package meta
