// Package cluster holds the broker's topics: their partitions, their configs
// (validated, with Kafka's defaults, durable across restarts), topic creation
// and deletion, producer id allocation, and the background cleaner that
// applies retention and compaction. The pure rules a topic obeys (names,
// configs) live in the subpackage topicrules, which the metadata group's
// state machine applies too.
//
// # Metadata
//
// The topics, the cluster id, producer id blocks and the ACLs (acls.go:
// CreateACLs, DeleteACLs, and ACLs, the applied set the authorizers read,
// replaced by reconcile) and the client quotas (quotas.go:
// AlterClientQuotas, and ClientQuotas, the applied config the quota
// managers read, replaced by reconcile) live in the metadata
// Raft group (package controller, meta.Machine as its state machine), here
// with this node as its only voter on a scheduler the cluster owns, which
// sends to no peer (metagroup.go). CreateTopic, DeleteTopic,
// CreatePartitions, SetConfigs and NextProducerID validate as they always
// did, propose a command (the topic id drawn from the env's randomness,
// every replica on this node) and return once this node applied it; the
// group's refusals map to this package's errors. The cluster's node id 0
// is node 1 in the group, whose ids start at 1; clients see Config.NodeID.
//
// Users (users.go) are SCRAM credentials in the same group: a salted
// password is turned into the stored keys here and proposed; the Kafka
// listener's SASL exchange reads them. StageUser (stagedusers.go) writes
// a credential into a stopped node's data directory for Open to propose,
// which is how the first user of a listener requiring SASL exists.
//
// The replica manager (replicas.go) makes the open partitions follow the
// applied state: reconcile opens new and grown topics' partitions, applies
// changed configs, opens and closes replicas moved onto and off this node,
// and closes and removes dropped topics. It runs in the
// caller after its command applied (so a call returns with its partitions
// open) and on its own goroutine woken by the group's OnApplied, never on
// the group's worker.
//
// # Cluster mode
//
// With Config.Peers set (node id → Raft address of every initial voter,
// the same on every node) the node is one of a cluster (node.go). Its
// Raft groups run on a replica.Scheduler's workers, or, in the simulated
// cluster (Config.raftStepper), on a stepped scheduler the simulation
// steps as its clock advances. The
// Cluster owns its transport, a transport.TCP unless Config.Transport
// opens another (the Transport interface: transport/simnet in a
// simulation of the whole cluster in one process) (Raft batches to the scheduler; the
// controller's, the probe's and the leader table's frames; SnapshotRead
// frames to the snapshot server, snapshotserve.go, which answers followers
// copying the data below a local replica's snapshot; a MsgSnap with data
// below its next offset, and the SnapshotChunk frames, to the snapshot
// fetcher, snapshotfetch.go, which copies that data into the replica's
// staging directory (a copy begun from another node starts again: each
// replica cleans its own log) before it steps the MsgSnap into the
// replica, and drops the group's next snapshots until the replica
// installed one Raft took (a newer copy would replace its staged data); join connections to
// the controller), one replica.Scheduler sending through
// transport.ReplicaSender for the metadata group and every partition
// group, the controller opened with the peers (a new node probes them
// before bootstrapping), and a leaders.Leaders sending heartbeats to the
// registered brokers, which become transport peers as their registration
// applies (dialled at Config.PeerDialAddrs where it names them, at the
// registered or Peers address otherwise). Open waits, each wait bounded by StartTimeoutMs, for the
// metadata group to have a leader and this node to apply what it knows
// committed, then registers its Kafka and HTTP addresses, its named Kafka
// listeners' addresses (Config.KafkaListeners) and rack (RegisterBroker
// under its incarnation; proposed again while a lost frame leaves its
// outcome unknown) when the state holds others. Config.TransportTLS runs
// the transport, and a join, over TLS. NodeRequest carries a front end's
// request to another node's handler (SetNodeRequestHandler; the Kafka
// server's transaction requests) over the transport (noderequest.go).
//
// With Config.Join instead of Peers (join.go) the node joins a running
// cluster through one member's Raft address: controller.JoinByAddress
// (over Config.Joiner when set: a simulated network's) registers it under
// a new incarnation and has the metadata leader add it as a learner,
// asked again with the same nonce while the outcome is unknown (a leader
// changing, a frame lost) or while the leader still hears the node's old
// incarnation (controller.ErrLiveIncarnation: a wiped node back within an
// election timeout); the answer's cluster id and incarnation make its identity
// and the brokers it names its peers. The controller creates its meta log
// empty, then writes node.json; the leader's snapshot fills it, the node
// registers its addresses and the leader marks it ACTIVE once caught up.
// Restarted before that snapshot arrived (its state names no broker), it
// asks the member again with node.json's nonce (the same registration);
// after, it starts from its own log. SpreadOnto (cairn cluster add-node)
// then moves onto an ACTIVE node the replicas PlanSpread picks (spread.go,
// pure). A node of Peers whose data was lost rejoins the same way under a
// new incarnation (controller's wiped-voter rule) and dials the brokers the
// answer names (controller.JoinedPeers: the metadata leader may be a node
// its Peers do not name); the metadata leader's
// moveLoop moves every partition replica of a replaced incarnation to the
// node's current one (refillReplaced), which copies the partition; it
// first cancels a renewal onto such an incarnation, which could never
// finish (meta.StaleRenewal). A replica found damaged (its files refused
// at open, replica.ErrLogLost, or a damaged read, after which a leading
// replica hands its leadership over) is renewed the same way, one
// partition at a time (damaged.go): once the other replicas are a live
// quorum by themselves and one of them leads, its node asks for a new
// placement of the replica on itself (BeginReassignment.RenewReplicas),
// and runs only the newer of its two ids.
//
// Every partition with a replica on this node (a replica id of node.json's
// node incarnation, any placement, the newest of two: localReplica; a move
// back or a renewal places a new one, and the slot reopens under it,
// replacing the directory) is a
// partition.OpenReplica whose group runs on
// the scheduler (replicagroups.go): a new replica's Raft log starts from
// the bootstrap snapshot every replica derives alike from the placement
// (index 1, term 1, voters = the group's first replicas), and a new group's preferred
// leader campaigns at once. Its state machine is the partition wrapped so
// that a leadership change also reaches the leader table and wakes
// LeadersChanged; it runs on the group's worker and takes only watchMu,
// never mu, since reconcile holds mu while it waits on the worker. A
// group leaves the scheduler before its partition closes. A replica
// stopped by a full disk, or by a snapshot it refused because the data
// copied for it was gone (partition.ReplicaConfig.CopiesSnapshots), is
// recreated from its partition's Raft log, which the refusal left as it
// was, under mu and with backoff (restartReplica); elected before its
// log took a record batch again, it hands the leadership to an
// in-sync voter (handOffFullReplica), waiting while none is in sync and
// asking again while a transfer did not take, once per failure, as it
// would refuse every produce while another replica could take them. A partition
// with no replica here has a slot with no Partition and Offline wrapping
// ErrNotLeader. Topics are placed with meta.Place over the applied state
// and proposed from any node (the controller forwards to the leader);
// every node opens its replicas as the creation applies there. A single
// node (no peers) keeps the one-voter group on its own scheduler and the
// single-writer partitions, exactly as before.
//
// # Moving replicas and leaders (reassign.go, membership.go)
//
// Reassign records a partition's target replicas (BeginReassignment). A
// node in the target opens its replica from the same bootstrap snapshot
// as the others (the group's first voters, meta.BootstrapVoters: the
// metadata group remembers them once a move completes), so it is not in
// its own starting configuration and never campaigns; it learns its
// addition from the leader's log. The group's leader (moveLoop, woken by
// metadata applies and every moveInterval while a group here moves) takes
// one step at a time from its applied configuration towards the wanted
// set (planMove, pure): each new replica added as a learner, a wait until
// every learner is within catchUpEntries of its log, a hand-over when the
// leader itself leaves, then one joint change (ConfChangeTransitionAuto,
// raft leaves it by itself); with the voters the target it proposes
// CompleteReassignment. Nothing is remembered between steps, so a new
// leader goes on where the last stopped, and a cancelled move (the
// replicas are then the wanted set) is undone the same way. Once the
// leader's Raft log no longer starts right after the bootstrap, a learner
// catches up through the snapshot install with segment copy
// (snapshotfetch.go); raft ignores a snapshot whose configuration does not
// name its receiver, so while the leader's snapshot predates the learner's
// addition the leader compacts its Raft log at its applied index
// (partition.CompactRaftAtApplied, segments kept), and a learner behind
// the log's start never counts as caught up. A node in neither set closes its
// replica and removes the directory (followPlacement, in reconcile), also
// at start for a move made while it was away. TransferLeader asks a
// group's leader, or the transferee's node, to hand over to the replica the
// metadata names in each round, not while that replica is of an earlier
// incarnation of its node (one a refill has yet to replace);
// PreferLeader and RebalanceLeaders hand what this node leads to the
// preferred leaders. RemoveNode makes a node DRAINING and starts
// meta.PlanRemoveNode's moves; the metadata leader's moveLoop marks it
// REMOVED once nothing is placed there, and the controller's membership
// round then removes its metadata voter.
//
// What the front ends read (view.go): Leader is a local replica's last
// leadership (leader replica → node, term → epoch, Local for the ready
// leader here) or, with no replica here, the leader table's; InSync is the
// leader's Raft progress (recently active and caught up to the commit)
// or, elsewhere, the replicas on nodes the table sees alive; Brokers the
// registered nodes; ControllerID the metadata leader's node. A leader (or
// metadata leader) on a node the transport found gone is unknown (-1).
//
// A node whose process ended is replaced at once: the transport reports
// it gone when its connection is lost and a dial to its address is
// refused (transport.Gone), and reportGone hands that to every local group
// (replica.Scheduler.ReportGone): a follower of a leader there forgets it
// and the lowest surviving voter campaigns, without waiting for the
// election timeout or, for a quiesced group, the leader table's liveness.
// A lost connection to a node still listening (a reset, a black hole)
// changes nothing of this. A killed node's connection may still look up
// here for a few milliseconds; ConfirmNode pings a node (transport Ping,
// within 100 ms) so that Metadata names a leader there only once it
// answered.
//
// A node stopping cleanly hands off first (handoff.go, HandOff, called by
// server.Close): every group it leads, the metadata group included, is
// transferred to an in-sync voter on a node not found gone (spread over
// them, the preferred first among equals: handOffTarget, pure), asked
// again every election timeout until a leader elsewhere is known or the
// caller's deadline passes; what has no such voter or does not move in
// time stays (logged). Meanwhile Leader reports no leader of a group being
// handed off, so Metadata waits for its election.
//
// # Idle cost, figures and health
//
// Partition groups quiesce while idle (replica's quiesce.go, design §3.6):
// the scheduler's Alive is the leader table's liveness of the replica's
// node, so a quiesced follower ticks again, and elects after its timeout,
// once its leader's node is declared dead (LivenessTimeout, 3 s), and a
// quiesced leader once a follower's is. A node whose frames are dropped
// (connection lost) wakes them sooner: reportUnreachable reaches every
// group with a replica there. The metadata group always ticks. Stats (stats.go) reports for the server's
// metrics the partitions led here, those with a voter the leader does not
// count in sync (InSync's rule) and those voters, the quiesced groups, the
// metadata leader, the elections local partition replicas started (vote
// requests sent) and won (ready leader of a new term), and the transport's
// counters; proposals are timed from PrepareProposal to their apply on the
// leader (cairn_cluster_commit_seconds, Collectors). Health is nil on a
// single node, and on a cluster node only when its replica is in the
// metadata group's configuration as of what it applied, the group has a
// leader it knows, it applied the metadata log up to the commit index it
// knows, and the replica has not stopped (a failed write or sync, or
// replica.ErrLogLost); otherwise ErrUnhealthy with the reason. TestClusterIdleCost
// (flag -cluster.idle) measures three nodes idle with 1,000 partitions.
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
// invariant holds only while this node proposes every deletion. A cluster
// node applies deletions proposed elsewhere, maybe while it is down, so
// its start (stale.go) also marks and removes an unowned directory whose
// raft-state names this node's replica of a group the cluster allocated
// (below the state's next group id) and no longer holds, and replaces such
// a replica found at a recreated topic's place before opening the new
// group's; any other unowned directory still refuses the start. The
// reverse, a directory holding a newer group's replica than the state a
// restarted node has applied so far (the topic deleted and created again
// in entries it has yet to replay), is neither opened as the older
// group's (its slot waits, errReplicaWaits) nor removed by the older
// topic's deletion (markForDeletion checks the group raft-state names). A replica
// moved off this node has its directory removed (reassign.go's
// removeUnassigned) only by a state at least as new as the meta log the
// node started with (controller.StartIndex): a restart replays the log
// from its last meta snapshot, and an older state may predate the entry
// that placed the replica here. Such a removal waits for a newer state.
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
// Cluster.watchMu, a leaf taken after mu, guards the LeadersChanged
// channel and the local replicas' leaderships.
package cluster
