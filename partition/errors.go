package partition

import (
	"errors"

	"github.com/cairnlog/cairn/streams"
)

// Expected conditions a caller maps to protocol errors (see kafka/errors.go).
var (
	// ErrOffsetOutOfRange: the offset is below the log start or above the log end.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrMessageTooLarge: a batch is larger than max.message.bytes.
	ErrMessageTooLarge = errors.New("batch larger than max.message.bytes")
	// ErrInvalidRecord: a batch or record is malformed or not allowed here.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrCorruptMessage: a batch fails its CRC or framing checks.
	ErrCorruptMessage = errors.New("corrupt batch")
	// ErrOutOfOrderSequence: an idempotent producer skipped sequence numbers.
	ErrOutOfOrderSequence = errors.New("out of order sequence number")
	// ErrInvalidProducerEpoch: an idempotent producer used an epoch older than the newest seen.
	ErrInvalidProducerEpoch = errors.New("producer epoch is older than the current one")
	// ErrStorageFailed: the partition is offline after a storage failure (failed fsync, corruption).
	ErrStorageFailed = errors.New("partition storage failed")
	// ErrDiskFull: the write failed for lack of space; the log is unchanged and writes resume when space returns.
	ErrDiskFull = errors.New("disk full")
	// ErrWrite: the write failed without failing the partition; the log is unchanged.
	ErrWrite = errors.New("write failed")
	// ErrRead: reading stored data failed (an I/O error); only that read fails,
	// the partition stays online for writes and other reads.
	ErrRead = errors.New("read failed")
	// ErrClosed: the partition was closed or deleted.
	ErrClosed = errors.New("partition closed")
	// ErrPolicyViolation: the topic's cleanup policy forbids the operation.
	ErrPolicyViolation = errors.New("not allowed by the topic's cleanup policy")
	// ErrNotLeader: a replicated partition's replica is not the ready
	// leader, or stopped leading the term an append was proposed in before
	// it committed (retriable: an idempotent retry is deduplicated).
	ErrNotLeader = errors.New("not the leader")
	// ErrInvalidTxnState: a transactional batch that no transaction the
	// coordinator began here covers (a late batch of an ended
	// transaction), or a plain batch from a producer whose transaction
	// is open.
	ErrInvalidTxnState = errors.New("invalid transaction state")
	// ErrTransactionCoordinatorFenced: a marker from a transaction
	// coordinator older (by its epoch) than the one that wrote the
	// producer's last marker here.
	ErrTransactionCoordinatorFenced = errors.New("transaction coordinator fenced")
	// ErrUnsupported: a feature the broker does not serve (transactions).
	ErrUnsupported = errors.New("unsupported")
	// ErrStreamBusy: an open transaction holds a stream the append writes;
	// retriable once that transaction's marker is written.
	ErrStreamBusy = streams.ErrStreamBusy
)
