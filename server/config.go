package server

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cairnlog/cairn/env"
)

// Config is the whole server's configuration. Flags and CAIRN_* environment
// variables map onto it in cmd/cairn.
type Config struct {
	// DataDir holds every partition's segments, topic metadata and producer state.
	DataDir string
	// KafkaAddr is where the Kafka protocol listener binds.
	KafkaAddr string
	// AdvertisedKafkaAddr is the host:port returned to clients in Metadata; empty means KafkaAddr.
	AdvertisedKafkaAddr string
	// HTTPAddr serves /metrics and /healthz; empty disables the HTTP listener.
	HTTPAddr string
	// AutoCreateTopics creates unknown topics named in Metadata requests, as Kafka's auto.create.topics.enable.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and of CreateTopics without a count.
	DefaultPartitions int32
	// RequestBytesMax bounds one Kafka request frame (default 100 MiB).
	RequestBytesMax int32
	// ConnectionsMax bounds concurrently open Kafka connections (default 10,000).
	ConnectionsMax int
	// InflightRequestsMax bounds requests read from one connection but not yet answered (default 32).
	InflightRequestsMax int
	// IdleTimeout closes a Kafka connection that sends nothing for this long (default 10 minutes).
	IdleTimeout time.Duration
	// DecompressedBatchBytesMax bounds one produced batch's records after decompression (default 64 MiB).
	DecompressedBatchBytesMax int
	// ProducerIDExpiration forgets an idempotent producer that appended nothing
	// to a partition for this long, as Kafka's producer.id.expiration.ms (default 1 day).
	ProducerIDExpiration time.Duration
	// Env is the node's clock, randomness, filesystem and logger. Unset
	// fields are the real ones (env.Real()); Start's filesystem and logger
	// arguments, when not nil, take the place of Env's.
	Env env.Env
}

// DefaultConfig returns the configuration `cairn serve` uses without flags.
func DefaultConfig() Config {
	return Config{
		DataDir:             "./cairn-data",
		KafkaAddr:           "127.0.0.1:9092",
		HTTPAddr:            "127.0.0.1:8080",
		AutoCreateTopics:    true,
		DefaultPartitions:   1,
		RequestBytesMax:     100 << 20,
		ConnectionsMax:      10000,
		InflightRequestsMax: 32,
		IdleTimeout:         10 * time.Minute,

		DecompressedBatchBytesMax: 64 << 20,
		ProducerIDExpiration:      24 * time.Hour,
	}
}

// Validate reports the first configuration problem found.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data dir must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil {
		return fmt.Errorf("kafka addr %q: %w", c.KafkaAddr, err)
	}
	if c.AdvertisedKafkaAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedKafkaAddr); err != nil {
			return fmt.Errorf("advertised kafka addr %q: %w", c.AdvertisedKafkaAddr, err)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("http addr %q: %w", c.HTTPAddr, err)
		}
	}
	if c.DefaultPartitions < 1 {
		return fmt.Errorf("default partitions %d: must be at least 1", c.DefaultPartitions)
	}
	if c.RequestBytesMax < 1024 {
		return fmt.Errorf("request bytes max %d: must be at least 1024", c.RequestBytesMax)
	}
	if c.ConnectionsMax < 1 {
		return fmt.Errorf("connections max %d: must be at least 1", c.ConnectionsMax)
	}
	if c.IdleTimeout <= 0 {
		return fmt.Errorf("idle timeout %s: must be positive", c.IdleTimeout)
	}
	if c.DecompressedBatchBytesMax < 1<<20 {
		return fmt.Errorf("decompressed batch bytes max %d: must be at least 1 MiB", c.DecompressedBatchBytesMax)
	}
	if c.ProducerIDExpiration < time.Millisecond {
		return fmt.Errorf("producer id expiration %s: must be at least 1ms", c.ProducerIDExpiration)
	}
	if c.InflightRequestsMax < 1 {
		return fmt.Errorf("inflight requests max %d: must be at least 1", c.InflightRequestsMax)
	}
	return nil
}
