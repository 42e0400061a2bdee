// Package storage keeps one partition's log on disk: a directory of
// segments holding Kafka RecordBatch v2 batches exactly as given, two sparse
// indexes per segment, and a small state file with the recovery point. It is
// the only code that touches files, and it does so through storage/vfs.
//
// # Files
//
// A partition directory holds, for every segment, three files named by the
// segment's base offset (the offset of its first batch) zero-padded to 20
// digits, plus the state file:
//
//	00000000000000000000.log        batches
//	00000000000000000000.index      offset index
//	00000000000000000000.timeindex  time index
//	00000000000000004096.log        next segment, base offset 4096
//	...
//	log-state                       state file
//
// Files ending in ".tmp" (an interrupted atomic write) or ".cleaned" (an
// interrupted compaction) are leftovers that Open removes. All integers are
// big-endian. Everything below is part of the on-disk format.
//
// # .log
//
// RecordBatch v2 batches back to back, byte for byte as appended; the
// layout of a batch is drawn in package batch. Batches in a segment have
// increasing, non-overlapping offsets; as appended they are contiguous
// (each starts at the previous one's last offset + 1); compaction may leave
// gaps. Segments never hold more than 2^32 bytes or span more than 2^32
// offsets, so the indexes can use 32-bit relative values.
//
// # .index (offset index)
//
// A sequence of 8-byte entries, strictly increasing in both fields:
//
//	0      4                 8
//	+------+-----------------+
//	| rel  | position        |
//	+------+-----------------+
//	rel       uint32  batch base offset minus segment base offset
//	position  uint32  byte position of that batch in the .log file
//
// A batch gets an entry when it starts at least IndexIntervalBytes after the
// previous entry (position 0 counts as an implicit first entry). To find an
// offset, a read takes the last entry at or below it and scans forward less
// than one interval plus one batch.
//
// # .timeindex (time index)
//
// A sequence of 12-byte entries, strictly increasing in timestamp:
//
//	0                 8      12
//	+-----------------+------+
//	| max timestamp   | rel  |
//	+-----------------+------+
//	max timestamp  int64   the batch's MaxTimestamp, in ms
//	rel            uint32  batch base offset minus segment base offset
//
// A batch gets an entry when its MaxTimestamp is larger than every earlier
// batch's in the segment and it starts at least IndexIntervalBytes after the
// previous time entry's batch; the first batch always gets one. When a
// segment is sealed (rolled), an entry for the batch holding its largest
// timestamp is added if the last entry is not already it, so the last entry
// of a sealed segment is its maximum. To find the first batch reaching a
// timestamp T, a lookup takes the last entry below T (every batch up to it is
// below T), and scans forward from the offset index position of its batch.
//
// # log-state (state file)
//
// Replaced atomically (write log-state.tmp, fsync, rename, fsync directory):
//
//	offset  size  field
//	 0      4     magic 0x43524e53 ("CRNS")
//	 4      2     format version, 1
//	 6      1     flags; bit 0: clean shutdown
//	 7      1     reserved, 0
//	 8      8     log start offset
//	16      8     recovery point: next offset (every offset below is synced)
//	24      8     recovery point: segment base offset (always the last segment listed)
//	32      8     recovery point: byte position in that segment
//	40      4     recovery point: offset index entries of that segment that are synced
//	44      4     recovery point: time index entries of that segment that are synced
//	48      8     recovery point: largest MaxTimestamp in that segment before the position
//	              (math.MinInt64 when none)
//	56      8     recovery point: base offset of the first batch holding it (-1 when none)
//	64      4     segment count N, at least 1
//	68      16*N  per segment, oldest first: base offset int64, created ms int64
//	68+16N  4     CRC32C (Castagnoli) of bytes [0, 68+16N)
//
// A reader rejects another magic or version, a wrong length or CRC.
//
// # Durability
//
// Append writes without syncing, then asks the segment file to start
// writing back the whole pages it filled (vfs.StartWriteback:
// sync_file_range on Linux; not the partial last page, which the next append
// writes into), so the next Sync finds them on their way to the device.
// Sync fdatasyncs every segment written since
// its last sync and, when files were created, renamed or removed, the
// directory; what it returns is durable. Checkpoint syncs, then syncs the
// index files, then writes the state file with the recovery point at the
// synced end. Retention (DeleteOldestSegment, AdvanceStartOffset) checkpoints
// with the new start offset before removing files.
//
// Reset (a Raft follower installing a snapshot past its data) empties the
// log and restarts it at an offset at or past its end: the state file
// naming that offset as start, end and only segment is written first, the
// commit point; recovery removes the segments below the start and creates
// the empty segment when it is missing (reset.go). InstallBelow then puts
// the data copied from the leader below such an empty log: sealed segments
// from the install's start (or from the batch holding it, which the log
// then starts inside), gaps allowed, written and synced under their
// final names below the state file's start (where recovery removes them),
// then the state file naming them and the new start, the commit point
// (install.go).
//
// TruncateSuffix (a Raft follower dropping entries a new leader overrides)
// cuts the log at a batch boundary: it syncs everything, writes the state
// file with the recovery point at the cut (segments listed up to the one
// holding it), truncates that segment's .log and syncs it, removes the later
// segments and syncs the directory, then rewrites the cut segment's indexes
// and checkpoints. A crash before the truncation is synced recovers the old
// log (what follows the recovery point still validates); after it, exactly
// the prefix (the cut segment ends at the cut, so no later segment
// continues it and recovery removes them); where compaction left offset
// gaps after the cut, the old log only up to the first gap, which validation
// takes for a torn tail. A failure once files started changing makes the
// log failed.
//
// A failed fsync anywhere
// makes the log failed for good (ErrFailed): after a failed fsync the kernel
// may have dropped dirty pages, and a later successful fsync would not
// bring them back.
//
// # Recovery
//
// Open reads the state file and lists the directory, then:
//
//   - Segments before the recovery point's segment are trusted: only their
//     sizes and the last entry of each index are read. A missing one, or one
//     shorter than its offset index says, is a *CorruptionError. If an index
//     file is missing or malformed (as a crash during compaction leaves it)
//     it is rebuilt from the .log file.
//   - In the recovery point's segment, the indexes are cut back to the entry
//     counts the state file records (what follows them, perhaps a torn
//     write, is not even decoded), and every batch from the recovery
//     position on is validated: length, CRC32C (batch.Next), and offset
//     continuity. The same goes for every later segment. At the first invalid
//     or incomplete batch the segment is truncated and all later segments are
//     deleted: that is a torn tail, never acknowledged.
//   - A segment shorter than the recovery position, a missing segment before
//     the recovery point, a state file that is unreadable (other than
//     absent on a directory without segments) are a *CorruptionError: synced
//     data is never truncated away.
//   - OpenSyncedTo names an offset the caller knows was synced (a replica
//     keeps its own record of each sync, apart from the segments, since the
//     recovery point lags up to a checkpoint behind): an invalid batch, a
//     missing or gapped later segment, or the log's end below it is a
//     *CorruptionError too, returned before a batch is cut or a segment
//     at or above the start offset removed.
//   - Segments listed below the start offset are leftovers of a retention
//     deletion and are removed.
//
// Then Open checkpoints, so the state file says clean=false and the recovery
// point covers everything recovered. After a clean Close the recovery point
// is the log end and the indexes are complete, so Open reads no batch data.
// The work of Open grows with the number of segments and with the bytes
// written after the last checkpoint, not with the size of the log.
//
// Damage before the recovery point is therefore found by the first read
// that passes it. A batch's CRC does not cover its base offset or length,
// so Read (and ReadSections) also check that each batch it scans lies
// after the one before it and within its segment: a batch a bit flip moved
// fails the read (batch.ErrCorrupt) rather than end it early as if the log
// ended there. Verify reads a whole log that way, CRCs included, for a
// small log that must refuse to start on any damage (a node's metadata
// log).
//
// # Concurrency
//
// The caller serializes mutations: Append, Checkpoint, DeleteOldestSegment,
// AdvanceStartOffset, ReplaceSegment, TruncateSuffix, Reset, InstallBelow,
// Close and Delete. Sync may
// run concurrently with one mutation: this is group commit, a flusher
// syncing while the writer appends. SetConfig may run beside any of them
// (a topic's config changed while its replica appends): it only replaces
// the config the next mutation reads. Read, ReadSections, FindTimestamp, MaxTimestamp,
// ReadSegment, NextOffset, StartOffset and Segments may run
// concurrently with anything. ReadSections gives the batches as Sections
// (file, position, length) that hold their segment open until released,
// for a fetch sent with sendfile.
//
// Inside, Log.mu (a RWMutex) guards the segment list, the offsets and each
// segment's published size and index entries; it is held only for memory
// updates, never across file I/O. Log.syncMu serializes syncs and is taken
// before Log.mu. Appended bytes become visible to readers only after the
// write returned, by raising the segment's published size under Log.mu.
// Readers and Sync take a reference on each segment they use; a deleted or
// replaced segment's file closes only when its last reference goes, so a
// read racing a deletion returns data or ErrOffsetOutOfRange, never a
// closed-file error. TruncateSuffix is the one mutation that shortens a
// file readers may hold: it replaces the segment in the list first, then
// waits for the old segment's last reference to go before truncating, and a
// read spanning segments starts over when a cut lands between two of them,
// so a read never returns bytes of the old log followed by bytes appended
// after the cut.
package storage
