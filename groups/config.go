package groups

import (
	"errors"
	"fmt"
)

// Config bounds the coordinator. Every limit a client can push on has one.
type Config struct {
	// SessionTimeoutMinMs and SessionTimeoutMaxMs bound the session timeout a
	// member may ask for (Kafka's group.min/max.session.timeout.ms).
	SessionTimeoutMinMs int32
	SessionTimeoutMaxMs int32
	// InitialRebalanceDelayMs holds the first rebalance of an empty group so
	// members starting together join one generation
	// (group.initial.rebalance.delay.ms).
	InitialRebalanceDelayMs int32
	// MembersPerGroupMax bounds members plus members still being admitted
	// (group.max.size).
	MembersPerGroupMax int
	// GroupsMax bounds the groups held, empty ones with offsets included.
	GroupsMax int
	// ProtocolMetadataBytesMax bounds the protocol metadata one member sends.
	ProtocolMetadataBytesMax int
	// OffsetMetadataBytesMax bounds a committed offset's metadata string
	// (offset.metadata.max.bytes).
	OffsetMetadataBytesMax int
	// OffsetsRetentionMs is how long an empty group and its offsets are kept,
	// measured from the group becoming empty or its last commit, whichever
	// is later (offsets.retention.minutes).
	OffsetsRetentionMs int64
	// OffsetsTopicPartitions is the partition count of __consumer_offsets
	// when it is created (offsets.topic.num.partitions).
	OffsetsTopicPartitions int32
	// CallsQueuedMax bounds requests waiting for the driver goroutine.
	CallsQueuedMax int
	// ConsumerSessionTimeoutMs is the session of consumer-protocol members
	// (group.consumer.session.timeout.ms); ConsumerHeartbeatIntervalMs is the
	// interval they are told to heartbeat at.
	ConsumerSessionTimeoutMs    int32
	ConsumerHeartbeatIntervalMs int32
	// Leaders says which __consumer_offsets partitions this node leads and
	// where the other nodes are; nil means the cluster (*cluster.Cluster).
	// Tests set a fake to move leadership by hand.
	Leaders Leaders
}

// DefaultConfig returns Kafka's defaults where Kafka has one.
func DefaultConfig() Config {
	return Config{
		SessionTimeoutMinMs:         6000,
		SessionTimeoutMaxMs:         1800000,
		InitialRebalanceDelayMs:     3000,
		MembersPerGroupMax:          1000,
		GroupsMax:                   10000,
		ProtocolMetadataBytesMax:    1 << 20,
		OffsetMetadataBytesMax:      4096,
		OffsetsRetentionMs:          7 * 24 * 60 * 60 * 1000,
		OffsetsTopicPartitions:      1,
		CallsQueuedMax:              1024,
		ConsumerSessionTimeoutMs:    45000,
		ConsumerHeartbeatIntervalMs: 5000,
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	switch {
	case c.SessionTimeoutMinMs < 1 || c.SessionTimeoutMaxMs < c.SessionTimeoutMinMs:
		return fmt.Errorf("groups: session timeout bounds [%d, %d] ms are not a positive range", c.SessionTimeoutMinMs, c.SessionTimeoutMaxMs)
	case c.InitialRebalanceDelayMs < 0:
		return errors.New("groups: initial rebalance delay must not be negative")
	case c.MembersPerGroupMax < 1 || c.GroupsMax < 1:
		return errors.New("groups: members per group max and groups max must be positive")
	case c.ProtocolMetadataBytesMax < 1 || c.OffsetMetadataBytesMax < 0:
		return errors.New("groups: metadata byte limits must be positive")
	case c.OffsetsRetentionMs < 1:
		return errors.New("groups: offsets retention must be positive")
	case c.OffsetsTopicPartitions < 1:
		return errors.New("groups: offsets topic partitions must be positive")
	case c.CallsQueuedMax < 1:
		return errors.New("groups: calls queued max must be positive")
	case c.ConsumerHeartbeatIntervalMs < 1 || c.ConsumerSessionTimeoutMs <= c.ConsumerHeartbeatIntervalMs:
		return errors.New("groups: consumer heartbeat interval must be positive and below the consumer session timeout")
	}
	return nil
}
