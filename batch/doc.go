// Package batch reads, checks and writes Kafka RecordBatch v2, the unit in
// which records travel from producers, rest in segment files and go out to
// consumers. It knows nothing of files or requests: every function works on
// byte slices, so the storage layer can walk a segment with Next and the
// protocol layer can check a produced batch with Validate (or ValidateEach,
// which hands over one record at a time and keeps none).
//
// # Batch format (magic 2), big-endian
//
//	offset size field
//	     0    8 BaseOffset            } outside the CRC: the log assigns them
//	     8    4 BatchLength           }   without recomputing it (BatchLength
//	    12    4 PartitionLeaderEpoch  }   counts the bytes after itself)
//	    16    1 Magic = 2
//	    17    4 CRC                   CRC32C (Castagnoli) of bytes 21..end
//	    21    2 Attributes            bits 0-2 codec (0 none, 1 gzip,
//	                                  2 snappy, 3 lz4, 4 zstd), bit 3 log
//	                                  append time, bit 4 transactional,
//	                                  bit 5 control
//	    23    4 LastOffsetDelta
//	    27    8 FirstTimestamp        milliseconds
//	    35    8 MaxTimestamp          milliseconds
//	    43    8 ProducerID
//	    51    2 ProducerEpoch
//	    53    4 BaseSequence
//	    57    4 NumRecords
//	    61    … records section, compressed as a whole by the codec
//
// # Record format (inside the records section)
//
// varint is a zigzag-encoded signed varint; a length of -1 means null.
//
//	varint  length of the rest of the record
//	int8    attributes (unused)
//	varint  timestamp delta from FirstTimestamp (64-bit)
//	varint  offset delta from BaseOffset (32-bit)
//	varint  key length, key bytes
//	varint  value length, value bytes
//	varint  header count, then per header:
//	          varint key length (never -1), key bytes
//	          varint value length, value bytes
//
// # Compressed forms
//
// gzip is RFC 1952 (several members allowed); snappy is a raw snappy block
// or the xerial framing the Java client writes (magic 82 'SNAPPY' 00,
// version and compatible version as int32, then chunks of int32 length and
// raw snappy block); lz4 is the LZ4 frame format; zstd is one or more zstd
// frames.
//
// # Errors
//
// ErrShort means the input stops before the batch does (a torn tail at the
// end of a segment); ErrCorrupt means bytes that are not a valid batch;
// ErrInvalidRecord means the records are malformed or disagree with the
// header; ErrTooLarge means a Limits cap was reached; ErrUnsupportedCodec
// means attribute bits 0-2 above 4.
//
// # Memory
//
// Nothing is allocated from a count or size read from input before it is
// checked against the bytes present or the Limits, so hostile input costs
// memory in proportion to its size or the caps, never to what it claims.
//
// All functions are safe for concurrent use; the byte slices passed in are
// not retained beyond what the returned records alias.
package batch
