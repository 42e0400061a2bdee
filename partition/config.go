package partition

import (
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
)

// Config is what one partition needs to know of its topic's configuration.
// The cluster package turns topic configs (strings) into this.
type Config struct {
	Storage storage.Config
	// MessageBytesMax bounds one batch as sent by the producer (max.message.bytes).
	MessageBytesMax int32
	// RetentionMs deletes segments whose newest record is older than this; -1 keeps them forever.
	RetentionMs int64
	// RetentionBytes deletes the oldest segments while the partition is larger than this; -1 means no limit.
	RetentionBytes int64
	// DeleteSegments enables retention (cleanup.policy contains delete).
	DeleteSegments bool
	// Compact keeps only the newest record per key (cleanup.policy contains compact).
	Compact bool
	// Streams keeps a stream index and applies stream metadata and deletions
	// (cleanup.policy=stream): the topic is an event store.
	Streams bool
	// DeleteRetentionMs is how long a compacted topic keeps tombstones (delete.retention.ms).
	DeleteRetentionMs int64
	// LogAppendTime stamps batches with the broker's clock (message.timestamp.type=LogAppendTime).
	LogAppendTime bool
	// Limits bound the work of decoding one batch.
	Limits batch.Limits
	// CheckpointIntervalMs is how often the flusher records a recovery point, bounding
	// the data a restart after a crash has to validate.
	CheckpointIntervalMs int64
	// ProducerIDExpirationMs forgets an idempotent producer that appended
	// nothing for this long (Kafka's producer.id.expiration.ms, a broker
	// setting: the cluster applies the node's value to every partition).
	ProducerIDExpirationMs int64
	// Syncer, when set, runs the single writer's log syncs together with
	// the other partitions sharing it (one per node: see Syncer); nil:
	// the partition's flusher syncs on its own. Read at open only.
	Syncer *Syncer
}

// DefaultConfig matches Kafka's topic defaults.
func DefaultConfig() Config {
	return Config{
		Storage:              storage.DefaultConfig(),
		MessageBytesMax:      1048588,
		RetentionMs:          7 * 24 * 60 * 60 * 1000,
		RetentionBytes:       -1,
		DeleteSegments:       true,
		DeleteRetentionMs:    24 * 60 * 60 * 1000,
		Limits:               batch.DefaultLimits(),
		CheckpointIntervalMs: 10_000,

		ProducerIDExpirationMs: 24 * 60 * 60 * 1000,
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if err := c.Storage.Validate(); err != nil {
		return err
	}
	if c.MessageBytesMax < batch.HeaderBytes {
		return fmt.Errorf("message bytes max %d: must be at least %d", c.MessageBytesMax, batch.HeaderBytes)
	}
	if c.RetentionMs < -1 || c.RetentionBytes < -1 {
		return errors.New("retention must be -1 (unlimited) or non-negative")
	}
	if !c.DeleteSegments && !c.Compact && !c.Streams {
		return errors.New("cleanup policy must be delete, compact, both, or stream")
	}
	if c.Streams && (c.DeleteSegments || c.Compact) {
		return errors.New("cleanup policy stream cannot be combined with delete or compact")
	}
	if c.DeleteRetentionMs < 0 {
		return fmt.Errorf("delete retention %d ms: must not be negative", c.DeleteRetentionMs)
	}
	if c.CheckpointIntervalMs < 1 {
		return fmt.Errorf("checkpoint interval %d ms: must be positive", c.CheckpointIntervalMs)
	}
	if c.ProducerIDExpirationMs < 1 {
		return fmt.Errorf("producer id expiration %d ms: must be positive", c.ProducerIDExpirationMs)
	}
	return nil
}
