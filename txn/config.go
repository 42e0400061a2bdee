package txn

import (
	"fmt"
	"time"
)

// Config is the transaction coordinator's. Zero fields take the defaults
// of DefaultConfig.
type Config struct {
	// StateTopicPartitions is the partition count __transaction_state is
	// created with (transaction.state.log.num.partitions; Kafka's 50).
	StateTopicPartitions int32
	// TransactionMaxTimeoutMs caps a producer's transaction.timeout.ms
	// (transaction.max.timeout.ms, 15 minutes as in Kafka).
	TransactionMaxTimeoutMs int64
	// AbortCheckInterval is how often timed-out transactions are looked
	// for (transaction.abort.timed.out.transaction.cleanup.interval.ms,
	// 10 s in Kafka).
	AbortCheckInterval time.Duration
	// TransactionsMax bounds the transactional ids one coordinator holds.
	TransactionsMax int
	// PartitionsPerTransactionMax bounds the partitions of one transaction.
	PartitionsPerTransactionMax int
	// IDExpirationMs is how long a transactional id without a transaction
	// in progress is kept after its last change
	// (transactional.id.expiration.ms, 7 days as in Kafka); then it is
	// removed, and its next InitProducerId gets a new producer id.
	IDExpirationMs int64
	// MarkerRetryInterval is how long the coordinator waits before writing
	// a transaction's markers again after a failure.
	MarkerRetryInterval time.Duration
	// EndWaitMax bounds how long EndTxn waits for its transaction's
	// markers after the outcome is durable (1 s).
	EndWaitMax time.Duration
	// Leaders, when set, replaces the cluster as the source of who leads
	// the partitions of __transaction_state (tests).
	Leaders Leaders
}

// DefaultConfig returns Kafka's defaults, with 1 s between checks for
// timed-out transactions: an abandoned transaction holds back every
// read_committed consumer of its partitions, so it goes soon after its
// timeout.
func DefaultConfig() Config {
	return Config{
		StateTopicPartitions:        50,
		TransactionMaxTimeoutMs:     15 * 60 * 1000,
		AbortCheckInterval:          time.Second,
		TransactionsMax:             1_000_000,
		PartitionsPerTransactionMax: 10_000,
		MarkerRetryInterval:         100 * time.Millisecond,
		IDExpirationMs:              7 * 24 * 60 * 60 * 1000,
		EndWaitMax:                  time.Second,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.StateTopicPartitions == 0 {
		c.StateTopicPartitions = d.StateTopicPartitions
	}
	if c.TransactionMaxTimeoutMs == 0 {
		c.TransactionMaxTimeoutMs = d.TransactionMaxTimeoutMs
	}
	if c.AbortCheckInterval == 0 {
		c.AbortCheckInterval = d.AbortCheckInterval
	}
	if c.TransactionsMax == 0 {
		c.TransactionsMax = d.TransactionsMax
	}
	if c.PartitionsPerTransactionMax == 0 {
		c.PartitionsPerTransactionMax = d.PartitionsPerTransactionMax
	}
	if c.EndWaitMax == 0 {
		c.EndWaitMax = d.EndWaitMax
	}
	if c.IDExpirationMs == 0 {
		c.IDExpirationMs = d.IDExpirationMs
	}
	if c.MarkerRetryInterval == 0 {
		c.MarkerRetryInterval = d.MarkerRetryInterval
	}
	return c
}

// Validate checks the config after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.StateTopicPartitions < 1 || c.StateTopicPartitions > 1000:
		return fmt.Errorf("transaction state partitions %d: want 1 to 1000", c.StateTopicPartitions)
	case c.TransactionMaxTimeoutMs < 1:
		return fmt.Errorf("transaction max timeout %d ms: want at least 1", c.TransactionMaxTimeoutMs)
	case c.TransactionsMax < 1 || c.PartitionsPerTransactionMax < 1:
		return fmt.Errorf("transactions max %d and partitions per transaction %d: want at least 1", c.TransactionsMax, c.PartitionsPerTransactionMax)
	}
	return nil
}
