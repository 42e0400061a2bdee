package txn

import "errors"

// Sentinels for the expected outcomes of transaction requests; the Kafka
// layer maps each to its error code.
var (
	// ErrNotCoordinator: this node does not lead the transactional id's
	// __transaction_state partition; the client looks it up again.
	ErrNotCoordinator = errors.New("not the transaction coordinator")
	// ErrCoordinatorLoadInProgress: this node leads the partition and is
	// still replaying it.
	ErrCoordinatorLoadInProgress = errors.New("transaction state is being loaded")
	// ErrCoordinatorNotAvailable: the coordinator cannot be named (the
	// topic cannot be created, or its partition has no leader).
	ErrCoordinatorNotAvailable = errors.New("no transaction coordinator available")
	// ErrConcurrentTransactions: the transaction is ending (markers being
	// written) or another request for it is being persisted; retriable.
	ErrConcurrentTransactions = errors.New("the transaction is ending or busy")
	// ErrProducerFenced: a newer producer with the same transactional id
	// took over (its epoch is newer).
	ErrProducerFenced = errors.New("producer fenced by a newer epoch")
	// ErrInvalidProducerIDMapping: the producer id is not the
	// transactional id's.
	ErrInvalidProducerIDMapping = errors.New("producer id is not the transactional id's")
	// ErrInvalidTxnState: the request does not fit the transaction's state
	// (ending a transaction that is not ongoing, or the other way).
	ErrInvalidTxnState = errors.New("invalid transaction state")
	// ErrInvalidTransactionTimeout: transaction.timeout.ms is not positive
	// or above transaction.max.timeout.ms.
	ErrInvalidTransactionTimeout = errors.New("invalid transaction timeout")
	// ErrTransactionalIDNotFound: no such transactional id (Describe).
	ErrTransactionalIDNotFound = errors.New("transactional id not found")
	// ErrInvalidRequest: a malformed request (empty transactional id).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrTooManyTransactions: the coordinator holds Config.TransactionsMax
	// transactional ids.
	ErrTooManyTransactions = errors.New("too many transactional ids")
	// ErrCoordinatorFenced: a partition refused a marker because a
	// coordinator of a newer epoch wrote the producer's last marker there
	// (Kafka's TRANSACTION_COORDINATOR_FENCED). MarkerWriter errors wrap
	// it.
	ErrCoordinatorFenced = errors.New("transaction coordinator fenced")
	// ErrClosed: the coordinator is closed.
	ErrClosed = errors.New("transaction coordinator closed")
)
