// Package controller runs the metadata Raft group (group 0) on a node
// (docs/design/replication.md §5): meta.Machine is its state machine, any
// node proposes commands and gets their Result once its own node applied
// them, and the state is durable and identical on every node.
//
// Package cluster runs it on a single node (one voter, a scheduler with
// no peers, WaitLeading before it reads the state at start). The meta log
// is the controller's own raftlog over <data>/meta/log (metalog.go), or
// any Log given in the config (a replica.Storage that can compact behind
// a snapshot: replica.MemStorage in tests). A joining or rejoining node's
// own meta log is created empty (raftlog.CreateEmpty) under its new
// replica id before node.json names that incarnation. raftlog carries the meta state in its
// snapshot descriptor, asking for it at the compaction index: the state of
// each compaction index is kept in <data>/meta/state-<index>, written
// before the log compacts there or installs the leader's snapshot there,
// older ones removed after, with the segments wholly below the compaction
// point. Its open reads that log whole (raftlog.Log.Verify: it holds only
// what follows the last compaction) and refuses to start on any damaged
// batch or entry; a compaction that finds one later stops the node's replica of
// the group (replica.Replica.LogDamaged), as a damaged entry raft reads
// does.
//
// # The log and the machine
//
// Open registers the group on the node's replica.Scheduler. An entry of the
// meta log is a one-record Kafka batch whose value is the marshalled
// metav1.Command; the leader stamps its base offset (the meta log's next
// offset) and its term as leader epoch in PrepareProposal, so the meta log
// can live in a storage.Log like a partition's. A ready leader has applied
// every entry before its term, so its first proposal of a term follows the
// applied offset, and each later one the one before (a dropped proposal
// gives its offset back). Apply checks every entry's base offset against
// the applied one. Raft's empty and configuration entries only advance the
// applied index. A command is checked (it decodes, at most 1 MiB) before it
// is proposed, forwarded ones too; one that does not decode and is
// committed all the same is an INVALID_COMMAND refusal on every node, not a
// failure of the group.
//
// # Proposals
//
// Propose on the leader proposes locally and waits for its entry to apply:
// an entry at its index with its term is its Result; another term there, or
// an entry of a later term applied first, means a new leader overwrote it,
// and it is proposed again. Elsewhere it forwards the command to the
// leader's node in a MetaPropose frame (frames.go draws the payloads) and
// waits for the MetaProposeResult, then for its own node to apply that
// index, so the caller reads its own write in State. A result answers the
// request with its id only when it comes from the node the request went
// to; request ids start at a random one each Open, so a late result meant
// for an earlier run answers nothing. Every wait is bounded
// by ProposeTimeout on the env's clock. A command known not to be applied
// (no leader known, "not the controller", a proposal lost to a new leader)
// is tried again until the deadline, then ErrNotController; one whose fate
// is unknown (no answer, the forwarded-to node lost the leadership) is not
// retried and fails with ErrTimeout, since a retry could apply it twice.
// A permanent refusal (a registered id at another address) is answered
// "refused": ErrRefused, not retried. A join under the id of a node whose
// current incarnation answered the leader within an election timeout is
// answered "refused (live)": ErrLiveIncarnation, which a node joining
// with cluster.Config.Join asks again until its start timeout (a wiped
// node back quickly is let in once its old incarnation is silent).
// The leader remembers the forwarded proposals it served lately by sender,
// frame type and request id (served.go, 16 × ForwardedMax of them, in
// memory; learner additions and joins alike): a copy of one, as a network
// that duplicates frames delivers, is not proposed again but answered with
// the first copy's result (dropped while that one is being served), so it
// is applied once and its sender never answered by its own copy ("topic
// already exists" for the topic it created). That makes resending safe: a
// request sent to another node (MetaPropose, Join, NodeJoin) goes again to
// the same node under its id every ResendInterval (the election timeout)
// until answered, so a lost frame costs that interval, not the whole
// ProposeTimeout (or a join attempt's 15 s: two lost NodeJoin frames
// failed a wiped node's restart in the seed runs). A request is never sent
// to another node under the same id.
//
// # Snapshots
//
// Every SnapshotEntries applied entries, and after each configuration
// change it applied, the controller takes the state at the applied index
// on the group's worker, writes it to
// <data>/meta/meta-snapshot off the worker (atomically), and then compacts
// the log to that index with the same bytes as the Raft snapshot's Data, so
// the log never lacks what the file does not cover. A follower too far
// behind gets that snapshot from the leader and restores from it. Both
// carry the meta log's next offset before the state (entry.go draws it).
// At start the machine comes from the file when it is past the log's
// snapshot, else from the log's snapshot; raft starts applying after the
// state's index or, when the hard state with the latest commit index was
// not synced, after that commit index, and the entries it hands over again
// are skipped. So a restarted node's state is at first older than what it
// acted on before (the rest of the log applies once a leader says how far
// it is committed); StartIndex, the log's last index at Open, is the
// index from which the state is at least as new as anything applied
// before the restart.
//
// # Identity and bootstrap
//
// <data>/node.json {version, cluster_id, node_id, incarnation,
// registration_nonce} binds a data directory to a node (OpenIdentity); a
// node started with another node id or cluster refuses to start. Version 1
// files (no nonce) are still read. Replica id = node id << 20 |
// incarnation (placement 0: meta/ids.go). A new node with an empty meta log bootstraps it with a
// snapshot at index 1, term 1 whose voters are every peer at incarnation 1
// (or the node alone), holding meta.Bootstrap's state (or a migrated
// legacy state), the same on every node, so no node needs a bootstrap
// entry of its own. The cluster id of a --peers cluster is derived from
// the peer list (ClusterIDFromPeers), so every node computes it alone and
// the transport's handshake refuses a node started with another list; a
// single node draws one (NewClusterID) or keeps its legacy cluster.json's.
// node.json is written only after the bootstrap snapshot is synced, so it
// on disk means the log was bootstrapped: an empty meta log beside it (a
// lost log) is refused, and a log without it is taken as a first start
// that stopped in between only while it holds the bootstrap snapshot alone
// and no vote (keeping the cluster id it holds), else refused.
//
// # The wiped-voter rule
//
// A node whose whole data directory was lost looks new, and bootstrapping
// would let it vote as incarnation 1 with an empty log. So a new node with
// peers first probes them (probe.go: frames ClusterProbe and
// ClusterProbeResult, answered by the node's Probe, which exists before
// its controller does, since peers probe each other from Open). A peer
// answers "new" (no node.json), "forming" (bootstrapped, nothing past the
// bootstrap) or "exists" (a term past the bootstrap's, which PreVote gives
// only after a quorum pre-voted, an entry or state past the bootstrap
// index, or joined: known at Open, before re-applying the log); a node
// with node.json answers nothing until its controller has opened. Any
// "exists" makes the node ask a member to register it (join.go, NodeJoin:
// its node id, nonce and Raft address; the member runs AddNode's steps and
// answers the incarnation, cluster id and every broker's Raft address,
// JoinedPeers, which the node dials before its state names them: the
// metadata leader may be a node that joined later; the node answers "exists" itself
// meanwhile, lest another wiped node count it as new), and it starts as
// Config.Join would; a quorum of "new" or "forming", itself counted, bootstraps. The leader
// then removes from the group any member whose node registered a later
// incarnation. The rejoining node's own meta log is created empty under
// the new incarnation; an own log still empty beside node.json (a join
// waiting for the leader's snapshot) opens as such, never voted, and one
// left empty without node.json (a start that stopped in between) is made
// again under the incarnation the node gets next.
//
// # Membership
//
// AddNode, on any node, registers a node under a new incarnation (JOINING,
// with a nonce, so that a registration whose outcome is unknown is
// proposed again and still makes one incarnation) and has the leader add
// its replica as a learner (forwarded in a Join frame), then snapshot and
// compact, since raft installs no snapshot whose configuration lacks the
// receiver. The node starts with Config.Join: its empty log (its own
// raftlog created empty, or Config.Log) waits for that snapshot. The leader's membership goroutine, after applies and every
// MembershipInterval, removes members of replaced incarnations and of
// nodes the operator removed (REMOVED brokers, live or not; a leader on
// such a node hands its leadership over first), promotes a
// caught-up learner while the group has fewer than three voters (counting
// a voter about to be removed as gone, so the promotion comes first and
// the group never drops below three voters while a learner could fill in:
// then any learner that answers the leader will do, caught up or not;
// a new leader, which knows no member's progress until they answer its
// first appends, waits two membership intervals before such a removal)
// and marks caught-up JOINING brokers ACTIVE. The transport must know the new node
// first: the wiring adds brokers' Raft addresses as peers as they apply.
// A node that knows only a member's address (--join HOST:PORT) calls
// JoinByAddress: a join connection to that member (transport.Join;
// JoinThrough takes another transport.Joiner, a simulation's), whose
// ServeJoin (transport.Config.JoinHandler) runs AddNode's steps with the
// node's nonce and answers the cluster id, the incarnation and every
// broker's Raft address (JoinAnswer); the node writes its identity from
// that and starts with Config.Join. A registered node id asking from
// another address is refused, lest a misconfigured node replace a member.
// Joins are not authenticated (a later issue): anyone reaching the Raft
// port can ask under any id. Until then, the leader refuses to register a
// new incarnation of a node whose current replica it heard from within an
// election timeout (a wiped node is silent that long under its old
// identity), and the membership round never removes the leader, such a
// live replica (unless its broker is REMOVED), nor a voter below a quorum
// of three.
//
// # Goroutines and locks
//
// The state machine's methods run on the group's worker. Controller.mu
// guards the machine, the applied index, the leadership and the waiters;
// State, Snapshot and WaitApplied take it from any goroutine; it guards the
// table of forwarded proposals served too. snapshotMu
// serialises taking a meta snapshot (the snapshot goroutine, AddNode and
// join goroutines take them). Probe.mu
// guards a probe's sender, answers heard and pending NodeJoins. Per
// controller: a snapshot goroutine, a membership goroutine, and one
// goroutine per forwarded request being served (at most ForwardedMax; more
// are answered "not the controller"). Close joins them all.
package controller
