// Package partition is one Kafka partition on one node: the single writer that
// validates and appends batches, the group-commit flusher that makes them
// durable, the producer state that makes idempotent producers exactly-once, the
// leader-epoch history, and the reads, retention and compaction over the log.
// Its files and time come from the env.Env given to Open: checkpoint
// intervals, producer expiry and LogAppendTime follow that clock.
//
// A partition opens in one of two modes. Open makes it its own single
// writer (what the server runs today). OpenReplica makes it the
// replica.StateMachine of a Raft group (replicated.go, replicaapply.go):
// Append validates as in the other mode and then proposes through the
// caller's Proposer, which runs on the replica's goroutine;
// PrepareProposal checks and stamps each batch, Apply takes in what the
// group committed. The group's Raft log is the partition's directory
// (raftlog: the segments hold each data entry once, as its Kafka batch,
// beside raft-state and raft-meta); OpenReplica opens or bootstraps it and
// RaftStorage gives it to the replica as its Storage. A directory the
// single writer wrote (no Raft log) is bootstrapped over its data
// (raftlog.Create's legacy path: a snapshot at its log end carrying its
// leader epochs) and keeps its producer state. Validation, producer
// state, reads, retention and compaction are the same code in both modes;
// a replica's retention and cleaners compact the Raft log first
// (replicatrim.go), on the replica's goroutine, and a cleaner pass
// replaces no segment once a snapshot install began after it read them
// (the install may have put the leader's segment at the same base
// offset). Linearize (linearize.go)
// makes a read on the leader linearizable: the caller's ReadIndexer
// confirms the leadership with a quorum and waits for the apply of what
// was committed then; a single writer answers at once.
//
// # Goroutines and locks
//
//   - Partition.mu is the single-writer lock. It covers producer state, offset
//     assignment and every storage mutation (Append, Checkpoint, segment
//     deletion, segment replacement). The group-commit sync runs outside it;
//     only a recovery checkpoint (every 10 s) and the producer-state snapshot
//     taken before the log start advances fsync under it. The snapshot after
//     a checkpoint is copied under mu and encoded and written outside it;
//     snapshotMu (taken after mu when both are held) keeps snapshots moving
//     forward in log offset.
//   - One flusher goroutine per partition calls storage.Log.Sync outside mu, so
//     appends continue while a sync runs; every sync covers all appends made
//     before it started (group commit). After a sync it raises the high
//     watermark and wakes everything waiting on it. With a Syncer
//     (Config.Syncer, one per node, syncer.go) the flusher hands its log to
//     the Syncer's workers and waits, so a node's many partitions run
//     at most SyncWorkers fdatasyncs at once instead of one thread each. A replica's flusher only
//     writes the producer snapshots Apply copies at checkpoints: the
//     replica's Storage syncs its log, and everything that writes the Raft
//     log (Apply, and retention and cleaners through the Proposer) runs on
//     the replica's goroutine, under mu.
//   - configMu makes config changes take turns. Turning cleanup.policy to
//     stream over a non-empty log starts a goroutine that builds the stream
//     index from the log without mu and takes mu only for the short tail and
//     to publish it; leaving stream stops such a build first, without mu.
//   - epochMu guards the leader-epoch history. It is a leaf lock never held
//     across I/O, so LeaderEpoch and EndOffsetForEpoch (every Metadata and
//     Fetch v9+) never wait behind a checkpoint holding mu.
//   - stateMu guards the high watermark, the failure and the wake-up channel.
//     Readers (Fetch, long polls, acks=all waiters) take only stateMu and the
//     storage layer's own read locks.
//
// # Invariants
//
//   - The high watermark is the synced log end offset: a consumer never sees a
//     record that a crash could take back, so a committed consumer offset can
//     never point past the log end after a restart.
//   - A produce with acks=all is answered only after a sync covering its last
//     offset returned nil. A failed sync fails the partition for good
//     (ErrStorageFailed); nothing appended after the last good sync is ever
//     acknowledged.
//   - A write error (for example a full disk) leaves the log as it was before
//     the append: the batch gets an error and the next append can succeed.
//   - A read that finds stored bytes that are not valid batches fails the
//     partition (ErrStorageFailed) like a failed sync: every later read would
//     fail the same way, so it must be reported and refuse writes. A read
//     that fails with an I/O error (ErrRead) fails only that read.
//   - The stream index takes an append's changes before they are durable
//     (the writer's checks need them); readers use WaitStreamDurable so that
//     metadata and deletions show only once durable.
//   - Producer state is a pure function of the log: a snapshot at a known
//     offset plus a replay of the batches after it (none, where a cleaner
//     removed every batch up to the log end), less the producers idle
//     for ProducerIDExpirationMs, which checkpoints forget.
//
// # Invariants of the replicated mode
//
//   - The segments are the group's Raft log: they hold uncommitted entries
//     too, which a leader of a later term may cut. The high watermark is the
//     offset after the last applied data batch (applied means committed and
//     durable in the group's log), so nothing a cut can remove is ever
//     served: reads, timestamp lookups, ListOffsets latest, retention and
//     the cleaners stop at it. It never moves back. At open it is the
//     offset after raft-state's applied index.
//   - Apply writes no batch: it checks that each committed data entry is
//     the batch stored at the offset after the previous one (its header:
//     base offset, size, epoch = term, and the stored batch's header there
//     the same, CRC included: the batch the Raft log appended for that
//     entry while its entry cache holds it, else read from the segments)
//     and records the applied index in the Raft log, with the replica's
//     ConfState after a configuration change.
//   - Offsets and leader epochs are assigned only by a ready leader (it has
//     applied its term's first entry, so the log end it starts from is
//     final), in PrepareProposal: BaseOffset is the next proposal offset,
//     PartitionLeaderEpoch the term. The client's base offset is ignored
//     (zeroed before proposing): a data entry never starts with a byte >=
//     0x80, which marks a partition command, and PrepareProposal refuses a
//     data proposal that does. A proposal raft drops gives its offsets
//     back, only if it is the last one stamped. No epoch starts at open: LeaderEpoch is the term, and
//     OffsetForLeaderEpoch answers from the Raft log's terms.
//   - A batch is checked against producer state as applied plus the
//     batches proposed in this term and not yet applied (the overlay), so
//     pipelined batches of one producer are checked in order; followers
//     build the same producer state by applying, so a retry after a
//     failover is answered as a duplicate by the new leader. Checkpoints
//     drop from the overlay the producers the applied state expired (none
//     with a batch pending), so a long term does not hold every producer
//     it saw. A duplicate
//     carries the original's term (the epoch it was applied with, or the
//     leader's while it is pending), so its waiter is acknowledged only
//     once the original commits: a pending original may be lost with its
//     term. So does an event-store retry answered from the stream index.
//   - A failed sync of the group's log fails the partition for good
//     (ErrStorageFailed) before the replica stops on it, so waiters and
//     appends get the storage failure, as on the single writer. A data
//     write refused for lack of space (ENOSPC) stops the replica but not
//     the partition (replicadiskfull.go): the segments undo the write, so
//     the Raft log ends whole; that term's waiters and the appends
//     refused until the group runs again get ErrDiskFull; and the owner,
//     asked through ReplicaConfig.DiskFull, recreates the replica from the
//     log after RestartPoint recorded what the partition applied (with the
//     ConfState of a configuration change applied last, which the Raft log
//     otherwise records only at the next Apply) and synced it: the new raft
//     node starts where the open partition is, not below its high
//     watermark. Raft is never told an entry is
//     durable that is not: the stopped raft node is dropped, not resumed.
//     A read that finds the stored log damaged (a replica's reads check
//     every batch's CRC, and the offsets and leader epoch the CRC does not
//     cover, too, the epoch against the Raft log's term boundaries
//     (raftlog.Log.TermEpochs), read.go: its open trusts the bytes below
//     the recovery point; reads a
//     Kafka fetch sends with sendfile do not pass there) takes the
//     partition offline
//     (as on the single writer) and tells the owner once
//     (ReplicaConfig.Damaged), which has the replica hand its leadership
//     over and then renews it from the group; StoredBytesInvalid tells
//     such errors, of a read or an open, from a failed read. Raft reading entries across such damage
//     (a leader catching up a replica) does the same and is told they are
//     compacted, so it sends a snapshot instead of panicking.
//   - Producer state and the stream index at open are caught up to the
//     applied offset, never past it; raft then delivers again the entries
//     after raft-state's applied index (written at checkpoints), and a
//     batch below what producer state or the index already covers (a
//     producer snapshot or an index commit later than that checkpoint) is
//     not recorded in it again.
//   - An acks=all waiter (WaitCommitted) succeeds only when the high
//     watermark passed its last offset and that offset holds a batch of
//     the term it was proposed in; when the replica stops leading that term
//     first (at once, though the batch may still commit under the next
//     leader, as Kafka answers NOT_LEADER_OR_FOLLOWER), or the offset was
//     reused by a later leader, it gets the retriable ErrNotLeader, never
//     success. acks=1 (WaitLocalDurable)
//     succeeds once the leader's own log holds the batch durably
//     (LocalSynced, which the Storage RaftStorage returns reports after
//     each Sync); what is durable is kept with its term, reset when the
//     term changes and raised only by the serving term's batches, so a
//     sync of an earlier term never covers a batch at a reused offset. A
//     failover can lose such a batch, as in Kafka.
//   - On a stream topic the stream index takes a batch when it is applied
//     (its covered offset in the same pebble batch), on every replica from
//     the same records. A batch's stream checks read the index, so a batch
//     touching a stream that a pending batch touches waits (off the
//     replica's goroutine) until that one is applied: appends to one stream
//     take turns, appends to different streams do not. The wait ends too
//     on a leadership change, a failure or close (with its error), and
//     after 30 s with the retriable ErrNotLeader: the batch ahead may never
//     commit. WaitStreamDurable
//     never waits: what the index shows is committed.
//   - Data is removed only below what the Raft log no longer serves:
//     retention, the cleaners and the DeleteRecords command (0x81, offset;
//     applied by every replica, capped at what it applied) compact the
//     Raft log to the entry before the first batch they keep, never past
//     the applied index it recorded, with the ConfState as of there, then
//     delete or rewrite (CompactRaftAtApplied compacts there and removes
//     nothing: a leader's snapshot must name a replica a move adds). A follower that needs an
//     entry below gets the leader's snapshot, whose descriptor carries
//     producer state (SetSnapshotData), written to disk before the Raft
//     log installs the snapshot, once it planned the install
//     (prepareInstall, raftlog's SetInstallPrepare); Restore takes it in, and a
//     follower whose log did not reach the snapshot restarts its segments
//     at the snapshot's next offset, with the data below it from the
//     descriptor's log start when a complete copy was staged, empty (and
//     serving from there) otherwise, unless its owner copies snapshots
//     (ReplicaConfig.CopiesSnapshots): then the install is refused with
//     nothing written, and the owner recreates the replica from its log
//     (Restart). On a stream topic the index a
//     snapshot passes (or its build) is deleted before the install, and
//     Restore builds it again from the installed log, as entering the
//     stream policy does (in the background past 4096 records, appends
//     needing it refused with ErrStreamIndexBuilding meanwhile); the
//     stream cleaner's markers keep the leader's revisions. The copy (snapshotcopy.go): the leader's
//     ReadSnapshotData serves the batches below its current snapshot, from
//     the descriptor's log start to its next offset, refusing another
//     snapshot (raftlog.ErrSnapshotChanged). A cleaner pass that rewrites
//     a segment below the current snapshot compacts the Raft log one
//     applied entry further first (renewSnapshotOver), so a copy under
//     way never joins pieces from before and after it; a follower's
//     SnapshotCopyWanted says a snapshot needs that copy (data below it,
//     and the Raft log lacks its entry) and OpenSnapshotCopy opens the
//     staging directory it goes to, once no install is using it.
//
// # Transactions
//
// txn.go. A transactional batch is checked like an idempotent one and
// opens its producer's transaction only if the transaction coordinator
// confirmed it here at that epoch (KIP-890): the caller opens a
// verification (VerifyStart), asks the coordinator and confirms it
// (BeginTransaction), which fails if a marker for the producer was written
// in between (ErrNotLeader if a leadership change dropped the verifications
// meanwhile: a replica's verifications last one term as ready leader, since
// another leader may write the marker); a late batch of a transaction a marker ended is refused
// (ErrInvalidTxnState), as is a plain batch of a producer whose
// transaction is open. Control batches
// come only from WriteMarker (the coordinator's COMMIT or ABORT, Kafka's
// control record layout, batch.EncodeMarker), in both modes through the
// same checks and producer state. Producer state keeps each producer's
// open transaction (its first offset) and the aborted-transaction index
// (producer, first offset, marker offset), both in the producer-state
// snapshot (version 2; a replica's snapshot descriptor carries the same
// bytes) and rebuilt from the log when it is lost; expiry keeps producers
// with an open transaction, checkpoints drop aborted entries below the
// log start. Readers load an immutable view (txnView) without locks: the
// last stable offset is the first offset of the oldest transaction not
// ended by a durable marker (on a single writer a marker above the high
// watermark does not count yet), else the high watermark, and never below
// the log start;
// ReadAppendIsolated(committed) stops there and lists the aborted
// transactions the records overlap. Compaction stops at the last stable
// offset and removes aborted transactions' records; it removes a marker
// once no batch of its transaction is left and delete.retention.ms passed.
// An ABORT marker goes a pass after its transaction's last batch, and its
// aborted-index entry first, made durable in the producer-state file: an
// entry never outlives its marker (a client would drop the producer's
// later records), and a marker without an entry is ignored. A pass also
// drops the entries whose marker is no longer stored (a replica's
// snapshot taken before its leader removed the marker).
//
// On a single-writer stream topic (streams.go) a transaction's batches are
// checked against the index and what open transactions hold
// (streams.Pending, streamTxns), and held there until their marker: a
// COMMIT commits them to the index, an ABORT drops them; other writes to a
// held stream get ErrStreamBusy, and WaitStreamFree lets readers wait for
// the marker. The index records the first offset of the oldest
// transaction holding streams (Index.SetHeld) before anything moves its
// covered offset past it, and a replay starts there (replayStart),
// reading only transactional batches below the covered offset. A
// replicated stream topic does the same at apply on every replica
// (applyStreams replays each applied batch as replayIndex does); its leader
// checks a batch against what is applied, and a pending marker counts as
// touching the streams it releases, and as blocking its producer's next
// transaction, until it is applied.
package partition
