// Package raftlog keeps what a replicated partition needs beside its Kafka
// segments to serve as a Raft log: the hard state (raft-state) and the
// entries that are not Kafka batches, truncations, the snapshot point and
// index ↔ offset anchors (raft-meta). Data entries are the partition's
// RecordBatches themselves, stored by package storage; their Raft index is
// not stored in them but counted forward from the nearest anchor or
// non-data entry, and their term is the batch's PartitionLeaderEpoch
// (docs/design/replication.md §1).
//
// The package holds the two file formats and their codecs, the in-memory
// bookkeeping (term boundaries, non-data entries, anchors), the locator
// that counts entries forward over the stored batch headers (locate.go),
// and Log: Create and Open with recovery (open.go), the read side of
// raft.Storage answering as raft.MemoryStorage does (log.go), with the
// entries appended last kept in memory (cache.go), and the
// write side (write.go: Append with conflict truncation, SetHardState,
// RecordApplied, Sync, Checkpoint), whose entries are checked and
// classified by classify.go; Compact and Snapshot (compact.go) move and
// describe the compaction point, so Log is a raft.Storage; Checkpoint
// rewrites raft-meta with its live records when it grew well past them
// (rewrite.go). ApplySnapshot (apply.go) installs a snapshot a leader
// sent, whose Data is a Descriptor (descriptor.go), the encoding Snapshot
// returns; ReadSnapshotData (snapread.go) serves a follower copying the
// data below the current snapshot, piece by piece, and CheckSnapshotData
// verifies a piece before the follower keeps it, and a Staging keeps the
// pieces in <dir>.install/, resumable across crashes (staging.go);
// Storage (adapter.go) gives the Log as the replica driver's
// Storage. EpochEndOffset (Kafka's OffsetForLeaderEpoch over the terms
// and the legacy epochs, below a limit: the high watermark, as the terms
// include the uncommitted tail) and IndexAtOffset are the Kafka-side
// lookups (epochs.go). Create also takes a legacy directory, written by the
// single-node partition: its data stays below the bootstrap snapshot and
// its leader-epochs.json becomes the snapshot's legacy epochs (legacy.go;
// testdata/legacy-v1 is such a directory, written by the partition code).
// CreateEmpty (empty.go) makes a log that starts empty, as a new
// raft.MemoryStorage does (FirstIndex 1, LastIndex 0, no vote, no
// configuration; on disk a Snapshot record at index 0, term 0), for a
// replica added to a running group (a node joining the metadata group): it
// waits for the leader's snapshot through ApplySnapshot, or its entries
// from index 1, and Snapshot asks the state hook nothing for index 0.
//
// # Entry cache
//
// Raft reads each entry back once it commits (to apply it) and a leader
// again for each follower, moments after appending it; counting it in the
// segments from the nearest anchor costs whole chunk reads. So the Log
// keeps the entries appended last, as Entries would build them, up to
// entryCacheBytes (16 MiB of data, plus a fixed overhead per entry),
// evicting the oldest; Entries answers from it when it holds [lo, hi)
// whole (or up to the size limit) and reads the segments otherwise (a
// follower further behind, after Open, which starts it empty). It is kept
// exact under the Log's lock with the bookkeeping: its entries are
// consecutive and end at the last entry; a conflicting Append drops those
// at and above the cut, Compact those at and below the compaction point,
// ApplySnapshot all of them. Entries and their Data are never mutated;
// Entries returns copies of the entries that share their Data, which no
// reader changes (raft's MemoryStorage shares its entries whole). It
// holds the Data slices Append received, which raft does not change after
// handing them over. AppendedData gives a cached entry's Data as
// appended: for a data entry, the batch the segments hold at its place,
// which a replicated partition's apply compares with the committed entry
// instead of reading it back.
//
// # Durability
//
// Append writes without syncing. Sync, which may run on a flusher
// concurrently with the write side, syncs the segments, then appends a
// Synced record of their synced end to raft-meta (when it moved) and
// syncs raft-meta, then rewrites raft-state if the term or vote changed:
// after it returns, every entry appended and the hard state set before
// the call survive a crash, and a later Open that finds fewer batches
// knows they were damaged, not torn (see Recovery point and damage);
// raft-state is also rewritten when raft-meta holds, past its recovery
// point, a record other than Synced or Anchor records. The
// record costs a second fsync per Sync; it is what keeps a replica whose
// disk lost synced batches from voting as though it never had them. A
// conflicting Append first lowers a Synced record above the cut to it
// (synced), then cuts the segments (storage.TruncateSuffix syncs), then
// writes and syncs a Truncate record, before writing the new entries. A non-data Entry record is synced before any batch written
// after it: each file keeps its own prefix of what was not synced, and
// batches kept without the non-data entry before them would be counted
// one index too low, which no epoch check sees within a term; and
// raft-state is rewritten then, moving its recovery point past the
// record, so that its damage is corruption rather than a torn tail whose
// cut renumbers the batches after it the same way.
// Checkpoint appends an Anchor for the last data entry, syncs,
// checkpoints the segments and rewrites raft-state (applied index,
// ConfState, raft-meta's synced size) when something changed, so the next
// Open walks only what was appended after it. A failed write or sync
// makes the Log failed (storage.ErrFailed) until reopened, but for a data
// write refused for lack of space, which the segments undo: the Log then
// ends at the entry before it and may take entries again. Once failed,
// nothing more is written or synced to raft-meta or raft-state by either
// goroutine (the write side and Sync both append to raft-meta): a torn
// record must stay the file's last, past its recovery point.
// ApplySnapshot cuts as a conflicting Append does, syncs the segments it
// keeps, replaces raft-meta atomically by a file of the next generation
// holding only the snapshot (flagged when the segments restart empty at
// its next offset), resets the segments if so (and installs below them a
// complete staged copy of the data below the snapshot, install.go), then
// writes raft-state, then removes the staging directory; Open finishes a
// reset and install a crash left due, and removes a staging directory of
// a snapshot at or below the log's.
//
// Open recovers: storage.OpenSyncedTo (the segments, refused rather than
// cut below the last Synced offset), raft-state, raft-meta up to its recovery
// point (a torn tail after it is cut), then a walk from the last anchor
// below the segments' end that stops at the first entry the segments and
// raft-meta disagree about; the rest is cut as a conflict is, unless it
// lies below the last Synced offset (damage). Because the
// segments are synced before raft-meta and a truncation cuts the segments
// before its record is written, what a crash leaves is always a prefix of
// a log that existed, and the walk finds where it ends. An applied entry
// missing is corruption.
// Files are read and written through storage/vfs only.
//
// # Formats
//
// All integers are big-endian and fixed width; checksums are CRC32C
// (Castagnoli) as everywhere in storage. Everything below is part of the
// on-disk format; each file has a format version, and a reader refuses
// another version with ErrVersion (never as damage).
//
// # raft-state
//
// Replaced atomically (vfs.WriteFileAtomic: write raft-state.tmp, fsync,
// rename, fsync the directory), so it is never torn: a read gives the old
// or the new content, and anything else is ErrInvalid.
//
//	offset  size  field
//	 0      4     magic 0x43524e48 ("CRNH")
//	 4      2     format version, 1
//	 6      2     flags; bit 0: clean shutdown; other bits 0
//	 8      8     group id (0: the meta group)
//	16      8     replica id
//	24      8     term
//	32      8     vote (0: none)
//	40      8     applied index (also reported as the commit index at restart)
//	48      8     raft-meta recovery point: bytes of that file known synced
//	56      4     raft-meta generation the recovery point refers to
//	60      4     ConfState length N, at most 64 KiB
//	64      N     ConfState as of the applied index (raftpb, marshalled)
//	64+N    4     CRC32C of bytes [0, 64+N)
//
// # raft-meta
//
// Created or rewritten atomically (header and the live records at once,
// all synced), then appended to, one record per Write, so a crash tears at
// most the records after the last sync. A rewrite increments the
// generation.
//
//	header, 40 bytes:
//	 0      4     magic 0x43524e52 ("CRNR")
//	 4      2     format version, 1
//	 6      2     flags; bit 0: reset segments (see below); other bits 0
//	 8      8     group id
//	16      8     replica id
//	24      8     written bytes: the file's size as created or rewritten
//	32      4     generation
//	36      4     CRC32C of bytes [0, 36)
//
//	record, 8+L bytes:
//	 0      4     CRC32C of bytes [4, 8+L): length, type and body
//	 4      4     length L of type and body, in [1, 1 MiB]
//	 8      1     type
//	 9      L-1   body
//
// The CRC covers the length, so a damaged length is caught by the CRC
// rather than by luck. Bodies, by type:
//
//	1 Entry     index u64, term u64, kind u8, next offset i64, data length u32, data
//	            a non-data entry; kind 0 empty (a new leader's first entry),
//	            1 ConfChange, 2 ConfChangeV2, 3 partition command,
//	            4 no-op (an empty normal entry in the middle of a term)
//	2 Truncate  index u64, next offset i64
//	            entries and anchors at or above index are void; the
//	            segments were cut to next offset
//	3 Snapshot  index u64, term u64, next offset i64, log start offset i64,
//	            ConfState length u32, ConfState,
//	            term count u32, count × {term u64, index u64, start offset i64},
//	            then, only when there are any, legacy count u32 (≥ 1),
//	            count × {epoch u32, start offset i64}
//	            the compaction point, the term boundaries at or below it
//	            and the partition's leader epochs from before replication;
//	            always the first record of a file
//	4 Anchor    index u64, offset i64
//	            the data batch stored at Kafka offset `offset` is entry `index`
//	5 Synced    next offset i64
//	            the segments were synced up to next offset when it was
//	            written (after that sync returned); the last one counts,
//	            lowered by a Truncate after it; a rewrite keeps it
//
// The reset-segments flag marks the raft-meta file ApplySnapshot writes
// when the log did not hold the snapshot's entry: the segments restart
// empty at the Snapshot record's next offset. While raft-state names the
// generation before it, that reset may not have happened; Open does it
// (storage.Log.Reset) and then writes raft-state. A Snapshot record whose
// log start is below its next offset was written only with a complete
// staged copy of that data at hand: Open installs it below the emptied
// segments (storage.Log.InstallBelow) unless the segments already span
// exactly [log start, next offset).
//
// "Next offset" of an entry is the Kafka offset it precedes (the log end
// when it was appended). Offsets are never negative.
//
// # Snapshot descriptor
//
// The Data of the raft snapshots Snapshot returns and ApplySnapshot
// installs (design §2.2):
//
//	 0      4     magic 0x43524e44 ("CRND")
//	 4      2     format version, 1
//	 6      2     flags, 0
//	 8      8     log start offset: the first offset of the data below
//	16      8     next offset: the offset after the snapshot's entry
//	24      4     term count, then count × {term u64, index u64, start offset i64}
//	              the term boundaries at or below the snapshot index
//	      4     legacy epoch count, then count × {epoch u32, start offset i64}
//	              leader epochs of the partition before it was replicated
//	      4     state data length, then the state data (opaque here: the
//	              state machine's, from the SetSnapshotData hook)
//	      4     CRC32C of everything before
//
// DecodeDescriptor checks the CRC, then the version (ErrVersion), bounds
// every count by the bytes left, and checks the offsets are not negative,
// the log start is at or below the next offset, and term boundaries and
// legacy epochs ascend below the next offset (ErrInvalid otherwise).
//
// # Staging directory
//
// A follower copying the data below a leader's snapshot (ReadSnapshotData
// on the leader) keeps it in <dir>.install/ until the snapshot is
// installed (staging.go: OpenStaging, Add, Sync, Complete, RemoveStaging).
// Two files, and a marker:
// install-meta, written and synced before the directory entry is, names
// the snapshot copied:
//
//	 0      4     magic 0x43524e49 ("CRNI")
//	 4      2     format version, 2
//	 6      2     flags, 0
//	 8      8     snapshot index
//	16      8     snapshot term
//	24      8     log start offset of the descriptor
//	32      8     next offset of the descriptor
//	40      8     sender: the node the data is copied from
//	48      4     CRC32C of everything before
//
// (Version 1, still read, lacks the sender: its CRC is at 40.) A copy
// resumes only from the same sender: replicas clean their logs each on its
// own, so two senders' data below one snapshot may differ. An install
// takes a complete copy whoever sent it.
// and data, the batches copied, whole and as the sender stored them, in
// ascending offsets with compaction's gaps, from the batch holding the log
// start offset (DeleteRecords may have moved it inside one) or the first
// after it. OpenStaging for the snapshot
// install-meta names resumes after the last whole batch with a valid CRC
// (cutting what follows: a torn write); for another snapshot, or when
// install-meta is missing or damaged, it removes the directory and starts
// again empty. complete, an empty file made durable after the data was
// synced, says the copy reaches the next offset (a gap may end it); only
// such a copy is installed, and a reopen of it is done. A bad batch in a
// complete copy is damage, not a torn write: OpenStaging starts the copy
// again, and the install refuses it (*storage.CorruptionError). The copy is data
// only: nothing in the log refers to it until an install does. A follower
// opens it through Log.OpenStaging, which waits for an install under way:
// ApplySnapshot reads the directory and removes it at its end, and would
// take with it a newer copy begun meanwhile. Without a complete copy, an
// install restarts the segments empty at the next offset, or, on a log
// told to install only with the data (RequireStagedData), is refused
// (ErrSnapshotDataMissing) before anything is written.
//
// # Recovery point and damage
//
// raft-state names a generation G and a number of synced bytes P. For a
// raft-meta file of generation G the recovery point is max(P, written
// bytes); for generation G+1 (a rewrite or install that landed before
// raft-state caught up) it is its written bytes, and Open writes
// raft-state naming it at once, so no replacement is ever two generations
// ahead; any other generation is corruption.
// Records starting before the recovery point must be whole with a good
// CRC, or ScanMeta returns a *storage.CorruptionError (synced, possibly
// acknowledged state is damaged; the replica must stop). After it, the
// first bytes that are not such a record are a torn tail, reported in
// MetaScan.Torn and cut at MetaScan.ValidBytes. A record with a good CRC
// whose body does not decode is corruption wherever it lies. Record
// lengths are bounded (1 MiB) before anything is sliced or allocated, and
// the file, loaded whole, at 64 MiB. The torn tail is cut and the cut
// synced before anything is appended after it.
//
// The segments have their own recovery point (storage's log-state), past
// which storage.Open takes the first bad batch for a torn tail and cuts
// it. Open reads the last Synced record first and opens the segments with
// storage.OpenSyncedTo, so a bad batch, a gap or an end below it is
// refused before anything is cut (the batches after the damage stay on
// disk); a walk that stops below it is refused likewise. Either is a
// *storage.CorruptionError: those batches were synced, so
// the replica may have acknowledged them, and a replica that went on
// without them could help elect a leader lacking committed entries before
// any leader told it what it lost. raft-meta's own records past
// raft-state's recovery point are still taken for a torn tail when
// damaged, so Sync rewrites raft-state, moving that point, whenever a
// record whose loss would lose entries (any but Synced and Anchor: a
// non-data entry, which the batches after it are counted from, a
// truncation, a compaction point) lies past it: before any entry after
// such a record is acknowledged, its damage is corruption (a non-data
// entry followed by data moves it at once: see the write side above). What may stay
// past it are Synced records, whose loss only weakens the segments'
// check (damage to both files at once is not told apart), and anchors. ReadMetaHeader reads only
// the header (group and replica id): whose a directory is when its
// raft-state is unreadable.
//
// # Terms without I/O
//
// Every term starts with its leader's empty entry, and by Log Matching
// that entry precedes every other entry of the term in every log that has
// one. So the kind 0 entries kept in raft-meta, plus the term history in
// the Snapshot record, are exactly the term boundaries, and the term of
// any entry is that of the last boundary at or below its index: a binary
// search in memory (book.term).
//
// Not every empty entry starts a term: raft v3.7 replaces a conf change
// it refuses by an empty normal entry (with its Type set) in the middle
// of a term. The write side classifies an empty entry by its term: above
// the term in force it starts a term (kind 0), equal to it it is a no-op
// (kind 4). Each kind goes back to raft as raft made it (Type unset for
// kind 0, EntryNormal for kind 4); an entry of another shape, which raft
// never makes, is refused rather than stored differently.
package raftlog
