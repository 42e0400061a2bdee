// Package journal is a node's journal: one append-only file that makes the
// appends of many single-writer partitions durable with one write and one
// fdatasync, in place of one fdatasync per partition file.
//
// A round of the node's partition.Syncer that finds many partitions with
// unsynced data copies each one's unsynced batches into a Record (the
// partition's Key, the offsets they span and the bytes exactly as its
// segment holds them), writes all of them with one Write and syncs the
// journal file once. The partitions' own segment files are synced later,
// by their checkpoints or when the journal asks for it to free a file.
// Recovery replays, for each partition, the records past what its segments
// recovered (partition.Open).
//
// # Files
//
// A directory (the data directory's "journal") of files named by a
// sequence number zero-padded to 20 digits with the suffix ".journal". A
// file is written only at its end, and a new one is started (and the
// directory synced) when it passes its size bound; a round is never split
// across files. A file may be removed once every record in it is covered
// by a sync of its partition's own files, or its partition is gone.
//
// # Records
//
// Records back to back, all integers big-endian:
//
//	0      4      8
//	+------+------+----------------------------------+
//	| len  | crc  | body (len bytes)                 |
//	+------+------+----------------------------------+
//	len   uint32  body length
//	crc   uint32  CRC32C (Castagnoli) of the body
//
//	body:
//	0        1        2        4
//	+--------+--------+--------+-----------+----------+-------+------+------+
//	| version| 0      | nlen   | name      | topic id | first | next | data |
//	+--------+--------+--------+-----------+----------+-------+------+------+
//	version   uint8   1
//	nlen      uint16  length of name
//	name      the partition directory's name (topic-index)
//	topic id  16 bytes, the topic's id: a topic deleted and created again
//	          under the same name does not take the old one's records
//	first     int64   base offset of the first batch in data
//	next      int64   offset after the last batch in data
//	data      RecordBatch v2 batches back to back, as the segment holds them
//
// A reader stops at the first record that is incomplete or fails its CRC:
// a round is acknowledged only after its sync, so such a tail was never
// acknowledged, and no round follows a failed one in the same journal.
package journal
