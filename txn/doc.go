// Package txn is the transaction coordinator of Kafka transactions
// (KIP-98): InitProducerId with a transactional id, AddPartitionsToTxn,
// AddOffsetsToTxn, EndTxn, transaction timeouts, and the state behind
// DescribeTransactions and ListTransactions.
//
// # Shape
//
// Machine is a pure state machine over the transactions of the
// __transaction_state partitions a node leads: a request and the time go
// in, a Decision comes out (an error, or the metadata to persist). The
// Machine takes a decision's metadata in only once the driver has made it
// durable (Apply), so it never holds what a crash could take back.
//
// Coordinator is the driver. It serialises the requests of one
// transactional id (a second request while one is being persisted gets
// ErrConcurrentTransactions, retriable), writes each decision to the id's
// __transaction_state partition and waits until it is committed
// (partition.WaitAppended with all: durable on a single node, held by a
// quorum on a replicated partition) before answering. A write that fails
// or times out unloads the partition: the log may or may not hold it, so
// the transactions are read again from the log. Its clock is the
// cluster's (Cluster.Env).
//
// # States
//
//	Empty ──AddPartitions──▶ Ongoing ──End(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//	  ▲                        │  │                                               │
//	  │                        │  └─End(abort), timeout, re-init──▶ PrepareAbort ──markers──▶ CompleteAbort
//	  └──────── Init (next epoch) ◀─────────────────────────────────────────────────┘
//
// InitProducerId gives a new transactional id a producer id from the
// cluster's producer-id blocks at epoch 0, and a known one the next epoch,
// which fences the previous producer (its requests get ErrProducerFenced;
// the partitions refuse its batches once a marker carries the new epoch).
// An Ongoing transaction at re-init, or past its timeout, is aborted with
// the epoch bumped, so that its producer is fenced too. Epoch exhaustion
// moves to a new producer id. The transaction's partitions are written with
// every state until it completes.
//
// A Prepare state, once durable, decides the outcome; it is completed on a
// goroutine of the driver, which EndTxn waits for (at most EndWaitMax): the MarkerWriter writes the COMMIT or
// ABORT marker to every partition of the transaction (a group's
// __consumer_offsets partition among them, where the marker also settles
// the transactional offset commits, see package groups), retrying until
// all are committed, and the Complete state is persisted. A coordinator
// that loads a partition (start, leader change) resumes the transactions
// it finds in a Prepare state the same way.
//
// # Which transactional ids this node coordinates
//
// As in Kafka, a transactional id's coordinator is the leader of partition
// abs(javaStringHash(id)) % partitions of __transaction_state (50
// partitions by default, created compacted on the first FindCoordinator).
// The driver follows the leader view (Leaders): it loads a partition it
// leads (replaying it up to the high watermark) and unloads it when it
// stops leading it or a new leader epoch begins; requests for ids of
// partitions not loaded get ErrNotCoordinator. A request that finds its
// partition led here but not loaded yet loads it first, and one that finds
// it led in another epoch than it was loaded in (lost and won back before
// the loop saw it) loads it again. State records are appended in the
// loaded epoch only (partition.AppendInTerm). Markers carry that epoch; a
// partition that refuses one as from an older coordinator
// (ErrCoordinatorFenced) makes the coordinator reload when its epoch
// moved, else retry after MarkerRetryInterval.
//
// # __transaction_state records
//
// Kafka's layout, encoded with kmsg, so Kafka's tools read them:
//
//	key (version 0)                 value (version 0)
//	+---------+-----------------+   +---------+----------------+---------------+----------------+------------+
//	| int16 0 | transactionalId |   | int16 0 | int64 producer | int16 epoch   | int32 timeout  | int8 state |
//	+---------+-----------------+   +---------+----------------+---------------+----------------+------------+
//	                                | partitions: [topic, [int32]] | int64 lastUpdateMs | int64 startMs |
//	                                +------------------------------+--------------------+---------------+
//
// Strings are an int16 length and bytes; state is Kafka's TransactionState
// number. Only the newest record of an id counts; a null value removes it.
//
// # Limits
//
// Config.TransactionsMax bounds the ids held, PartitionsPerTransactionMax
// the partitions of one transaction, TransactionMaxTimeoutMs a producer's
// timeout (15 minutes, as transaction.max.timeout.ms). An id with no
// transaction in progress is removed (a tombstone) IDExpirationMs after
// its last change (7 days, as transactional.id.expiration.ms).
package txn
