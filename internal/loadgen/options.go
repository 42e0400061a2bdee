package loadgen

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
)

// Workload names one kind of run; it is also the "workload" field of a
// Summary.
type Workload string

const (
	WorkloadProduce  Workload = "produce"
	WorkloadConsume  Workload = "consume"
	WorkloadEndToEnd Workload = "e2e"
)

// Limits on a run, so a typo cannot ask for a terabyte or a day.
const (
	recordBytesMax = 16 << 20
	producersMax   = 1024
	partitionsMax  = 100_000
	durationMax    = 24 * time.Hour
	// timestampBytes is the e2e value prefix: the send time.
	timestampBytes = 8
)

// ErrInvalidOptions reports options that cannot describe a run.
var ErrInvalidOptions = errors.New("invalid options")

// Options describe one run. Every run is bounded both by Records and by
// Duration, whichever comes first.
type Options struct {
	Topic string
	// Partitions is the partition count used when the topic is created; an
	// existing topic keeps its own.
	Partitions int32
	// RecordBytes is the size of each record's value.
	RecordBytes int
	// Records is how many records to produce (or, for consume, read).
	Records int64
	// Duration stops sending (or reading) once it has passed.
	Duration time.Duration
	// Keys is the number of distinct keys, used in turn; 0 sends null keys.
	Keys int
	// Producers is the number of concurrent producer clients.
	Producers int
	// RatePerSecond is the total target rate over all producers; 0 sends as
	// fast as the client accepts.
	RatePerSecond float64
	// Prefill, for consume, produces this many records before reading.
	Prefill int64
	// DrainTimeout bounds the wait for acknowledgements (and, for e2e,
	// deliveries) after the last send.
	DrainTimeout time.Duration
	Producer     ProducerSettings
	// FetchPartitionBytes is the consumer's kgo.FetchMaxPartitionBytes
	// (consume and e2e): how much one fetch returns of one partition. 0
	// keeps the client's default, 1 MiB, which is also Kafka's.
	FetchPartitionBytes int32
}

// fetchPartitionBytesMax bounds --fetch-max-partition-bytes: one fetch of
// one partition is held in memory whole, on both sides.
const fetchPartitionBytesMax = 256 << 20

// consumerOptions are the consumer client's settings beyond its topic.
func (o Options) consumerOptions() []kgo.Opt {
	if o.FetchPartitionBytes == 0 {
		return nil
	}
	return []kgo.Opt{kgo.FetchMaxPartitionBytes(o.FetchPartitionBytes)}
}

// ProducerSettings are the producer client's tuning knobs, in the words of
// the command's flags.
type ProducerSettings struct {
	Acks        string        // all, 1 or 0
	Compression string        // none, gzip, snappy, lz4 or zstd
	Linger      time.Duration // kgo.ProducerLinger
	BatchBytes  int32         // kgo.ProducerBatchMaxBytes
	// MaxInflight is kgo.MaxProduceRequestsInflightPerBroker; 0 keeps the
	// client's default. Idempotent writes (acks=all) pipeline on their own
	// and refuse the option.
	MaxInflight int
	// BufferedRecords is kgo.MaxBufferedRecords: how many records may wait
	// unacknowledged before a send blocks; 0 keeps the client's default.
	BufferedRecords int
}

// Validate reports every option that cannot describe a run of workload.
func (o Options) Validate(workload Workload) error {
	check := func(ok bool, format string, args ...any) error {
		if ok {
			return nil
		}
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidOptions)
	}
	minimumBytes := 0
	if workload == WorkloadEndToEnd {
		minimumBytes = timestampBytes
	}
	return errors.Join(
		check(o.Topic != "", "topic must not be empty"),
		check(o.Partitions >= 1 && o.Partitions <= partitionsMax, "partitions %d: want 1 to %d", o.Partitions, partitionsMax),
		check(o.RecordBytes >= minimumBytes && o.RecordBytes <= recordBytesMax,
			"record bytes %d: want %d to %d", o.RecordBytes, minimumBytes, recordBytesMax),
		check(o.Records >= 1, "records %d: want at least 1", o.Records),
		check(o.Duration > 0 && o.Duration <= durationMax, "duration %s: want more than 0 and at most %s", o.Duration, durationMax),
		check(o.Keys >= 0, "keys %d: want 0 or more", o.Keys),
		check(o.Producers >= 1 && o.Producers <= producersMax, "producers %d: want 1 to %d", o.Producers, producersMax),
		check(o.RatePerSecond >= 0, "rate %g: want 0 or more", o.RatePerSecond),
		check(o.Prefill >= 0, "prefill %d: want 0 or more", o.Prefill),
		check(o.DrainTimeout > 0, "drain timeout %s: want more than 0", o.DrainTimeout),
		check(o.FetchPartitionBytes == 0 || (o.FetchPartitionBytes >= 1<<10 && o.FetchPartitionBytes <= fetchPartitionBytesMax),
			"fetch max partition bytes %d: want 0 (the client's default) or 1024 to %d", o.FetchPartitionBytes, fetchPartitionBytesMax),
	)
}

// ClientOptions turns the settings into producer options for topic.
func (s ProducerSettings) ClientOptions(topic string, deliveryTimeout time.Duration) ([]kgo.Opt, error) {
	acks, idempotent, err := cli.ParseAcks(s.Acks)
	if err != nil {
		return nil, fmt.Errorf("acks: %w", err)
	}
	codec, err := cli.ParseCompression(s.Compression)
	if err != nil {
		return nil, fmt.Errorf("compression: %w", err)
	}
	if s.Linger < 0 {
		return nil, fmt.Errorf("linger %s: want 0 or more: %w", s.Linger, ErrInvalidOptions)
	}
	// The client's own bounds on a batch.
	if s.BatchBytes < 512 || s.BatchBytes > 1<<30 {
		return nil, fmt.Errorf("batch bytes %d: want 512 to %d: %w", s.BatchBytes, 1<<30, ErrInvalidOptions)
	}
	if s.BufferedRecords < 0 {
		return nil, fmt.Errorf("buffered records %d: want 0 or more: %w", s.BufferedRecords, ErrInvalidOptions)
	}
	if s.MaxInflight < 0 {
		return nil, fmt.Errorf("max inflight %d: want 0 or more: %w", s.MaxInflight, ErrInvalidOptions)
	}
	options := []kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(s.Linger),
		kgo.ProducerBatchMaxBytes(s.BatchBytes),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
	}
	if !idempotent {
		options = append(options, kgo.DisableIdempotentWrite())
	}
	if s.BufferedRecords > 0 {
		options = append(options, kgo.MaxBufferedRecords(s.BufferedRecords))
	}
	if s.MaxInflight > 0 {
		if idempotent {
			return nil, fmt.Errorf("max inflight %d with acks all: idempotent writes set their own window: %w",
				s.MaxInflight, ErrInvalidOptions)
		}
		options = append(options, kgo.MaxProduceRequestsInflightPerBroker(s.MaxInflight))
	}
	return options, nil
}
