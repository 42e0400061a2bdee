// Package replica drives one Raft group (go.etcd.io/raft/v3) over a Storage
// and a StateMachine.
//
// Storage is the seam to the durable log: writes are visible at once and
// durable only after Sync, which may run on another goroutine. MemStorage is
// its in-memory implementation with crash semantics (Crash keeps what the
// last completed Sync covered), for tests and the simulator.
//
// A Replica is steppable: nothing in it starts a goroutine, reads a clock or
// does I/O other than through Storage and the StateMachine. Its driver (a
// node worker, or the simulator in internal/sim) calls Tick, Step, Propose
// and then HandleReady, which with raft's asynchronous storage writes:
//
//   - writes entries, snapshot and hard state of each MsgStorageAppend
//     inline (not yet durable) and holds the responses behind a sync: the
//     returned Work.SyncSeq asks for a Storage.Sync, after which Synced(seq)
//     restores a snapshot written among them into the StateMachine, steps
//     the local responses into raft and returns the others to send;
//   - applies committed entries (locally durable too) to the StateMachine,
//     applies configuration changes, and steps the apply responses back;
//   - returns every other message to be sent now, so followers receive
//     MsgApp before the leader's own sync completes.
//
// Advance is never called. A leader is ready (Leadership.Ready) once it has
// applied the first entry of its term; only then does Propose run
// PrepareProposal and propose. A failed Sync, write or Apply stops the
// replica for good (ErrFailed), nothing of its Ready running after it;
// so does a heartbeat raft finds committing past its log's end
// (ErrLogLost: its storage lost entries it had acknowledged), or storage
// that cannot give back entries (to apply committed ones or scan them
// before a campaign: a partition answers raft.ErrCompacted for batches
// found damaged when read; or with any other storage error, which raft
// panics with as is), where raft panics (caught for those cases alone at
// each entry into raft: raft reads through raftStorage, which tags the
// errors it passes on, so a state machine's or raft's own panic is never
// taken for a lost log), and a StateMachine that is a LogLoser is told.
// The owner stops it the same way (LogDamaged) for damage it found reading
// the log outside raft (the controller's compaction of the meta log).
// Step refuses what no peer sends (ErrBadMessage: local-only types,
// proposals included, and messages not addressed to it), and
// ProposeConfChange takes one change at a time (ErrConfChangePending).
//
// Scheduler runs the groups of one node on a few workers: a group with
// pending events (messages from its Sender's peers, Do calls, ticks,
// completed syncs) is queued once and run by the next free worker; shared
// sync workers run Storage.Sync, so no group holds a goroutine of its own,
// and one ticker on the env's clock ticks them all (after a stall, once,
// not once per missed interval). Do and RemoveGroup refuse to run on a
// worker (ErrReentrant): there they would wait for themselves. A snapshot handed to
// the Sender is reported delivered (SnapshotsSent): a lost one is resent
// once the follower rejects the leader's next append. A snapshot whose
// configuration does not name its receiver (taken before a learner was
// added) is reported failed and not sent: the receiver would drop it.
//
// A Stepped scheduler (SchedulerConfig.Stepped) has no workers and no
// ticker: its owner calls Step, which gives the ticks due by the env's
// clock and one turn to every group with events, in group-id order, on
// the caller's goroutine, so that a simulation fixes the order in which a
// node's groups run, whatever order other goroutines queued their events
// in. Do from the stepping goroutine runs the group's turn at once (it
// would wait for itself); from another it waits for the next Step. With
// StepSyncs the syncs run in Step too, in group-id order; without, on the
// sync workers (a simulated disk whose sync waits on the clock the
// stepping goroutine moves needs them).
//
// With SchedulerConfig.Alive (the node's liveness of other nodes), a group
// added with GroupOptions.Quiesce stops ticking while idle (quiesce.go): its
// ready leader, with everything committed, applied and acknowledged by
// followers on live nodes, sends each a last heartbeat marked quiescing
// (Reject set, which raft never sets on a heartbeat) and stops; a follower
// that steps it from its leader stops too. A message other than a heartbeat
// response, an unreachable report, a call leaving the group busy or in
// another role, or a watched node no longer alive wakes it.
//
// ReportGone (leadergone.go) tells the groups that some replicas' processes
// ended: a follower of such a leader forgets it (raft's ForgetLeader, which
// takes it out of the CheckQuorum lease) and the lowest voter not gone
// campaigns at once, repeating its pre-vote at each tick for an election
// timeout while it has no leader; a quiesced group whose leader is not gone
// is left alone.
//
// Scheduler.ReadIndex gives linearizable reads (readindex.go): it returns
// once a ready leader's leadership was confirmed by a quorum heartbeat
// round begun after the call and the group applied up to that round's
// commit index. One round at a time per group serves every read queued
// when it starts; a read fails with ErrNotLeader when the replica is not,
// or stops being, the ready leader of the round's term, and with
// ErrReadDropped when no quorum answers within a bound of ticks. A group
// with a round in flight does not quiesce; a one-voter group answers at
// once.
package replica
