package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
)

// pollRecordsMax bounds the records taken from the client per poll, so the
// stop conditions are checked often.
const pollRecordsMax = 10_000

// Consume reads the topic from its log start to the high watermarks it had
// when the read began (a catch-up read), stopping early at options.Records
// or options.Duration. With options.Prefill it first produces that many
// records, untimed.
func (r *Runner) Consume(ctx context.Context, options Options) (Summary, error) {
	if err := options.Validate(WorkloadConsume); err != nil {
		return Summary{}, err
	}
	if options.Prefill > 0 {
		if err := r.prefill(ctx, options); err != nil {
			return Summary{}, err
		}
	}
	var partitions int32
	var plan readPlan
	err := r.withAdmin(ctx, func(ctx context.Context, admin *kadm.Client) error {
		var err error
		if partitions, err = topicPartitions(ctx, admin, options.Topic); err != nil {
			return err
		}
		plan, err = planRead(ctx, admin, options.Topic)
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	if plan.tracker.Done() {
		return Summary{}, fmt.Errorf("topic %q is empty: %w", options.Topic, ErrNothingToRead)
	}
	offsets := make(map[int32]kgo.Offset, len(plan.starts))
	for partition, start := range plan.starts {
		offsets[partition] = kgo.NewOffset().At(start)
	}
	client, err := r.Dial(append(options.consumerOptions(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{options.Topic: offsets}),
		// Transaction markers hold offsets too; the end tracker must see
		// them to know a partition is done.
		kgo.KeepControlRecords())...)
	if err != nil {
		return Summary{}, err
	}
	defer client.Close()
	if err := client.Ping(ctx); err != nil {
		return Summary{}, fmt.Errorf("reach a broker: %w", err)
	}

	summary := newSummary(WorkloadConsume, options, partitions)
	read := &readRun{clock: r.clock(), tracker: plan.tracker, recordsMax: options.Records}
	var readErr error
	r.measure(ctx, &summary, func() {
		read.start = read.clock.Now()
		stop := startProgress(r.Progress, WorkloadConsume, &read.records)
		readErr = read.run(ctx, client, read.start.Add(options.Duration))
		stop()
	})
	if err := summary.finish(outcomes{records: read.records.Load(), bytes: read.bytes, elapsed: read.last.Sub(read.start)}); err != nil {
		return summary, err
	}
	return summary, readErr
}

// prefill produces options.Prefill records before a read, untimed.
func (r *Runner) prefill(ctx context.Context, options Options) error {
	// A catch-up read ends at the high watermarks, the synced ends of the
	// partitions: with acks=all every acknowledged prefill record is below
	// them when the read is planned.
	options.Producer.Acks = "all"
	clientOptions, err := options.Producer.ClientOptions(options.Topic, options.DrainTimeout)
	if err != nil {
		return err
	}
	if _, err := r.prepareTopic(ctx, options); err != nil {
		return err
	}
	clients, err := dialProducers(ctx, r.Dial, clientOptions, options.Producers)
	if err != nil {
		return err
	}
	defer closeAll(clients)
	options.Records = options.Prefill
	run := newProduceRun(options, r.clock(), r.clock().Now(), false)
	stop := startProgress(r.Progress, WorkloadProduce, &run.acked)
	result := run.run(ctx, clients)
	stop()
	var summary Summary
	if err := summary.finish(result.outcomes()); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	r.note("prefilled %s with %d records in %.1f s", options.Topic, result.acked, result.elapsed.Seconds())
	return nil
}

// readRun counts a catch-up read.
type readRun struct {
	clock      Clock
	tracker    *cli.EndTracker
	recordsMax int64
	start      time.Time
	last       time.Time // when the last counted record arrived
	records    atomic.Int64
	bytes      int64
}

// run polls until every partition reached its end, recordsMax records were
// read, the deadline passed or ctx is done; only a fetch error is an error.
func (r *readRun) run(ctx context.Context, client *kgo.Client, deadline time.Time) error {
	r.last = r.start
	pollContext, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for !r.tracker.Done() && r.records.Load() < r.recordsMax {
		fetches := client.PollRecords(pollContext, pollRecordsMax)
		if pollContext.Err() != nil {
			return nil
		}
		if err := fetchError(fetches); err != nil {
			return err
		}
		r.count(fetches)
	}
	return nil
}

func (r *readRun) count(fetches kgo.Fetches) {
	counted := false
	for iter := fetches.RecordIter(); !iter.Done(); {
		record := iter.Next()
		if !r.tracker.Accept(record.Partition, record.Offset) || record.Attrs.IsControl() {
			continue
		}
		if r.records.Load() >= r.recordsMax {
			break
		}
		r.bytes += int64(len(record.Key) + len(record.Value))
		r.records.Add(1)
		counted = true
	}
	if counted {
		r.last = r.clock.Now()
	}
}

// fetchError returns the first fetch error, ignoring the ones a poll
// reports for its own cancellation.
func fetchError(fetches kgo.Fetches) error {
	for _, fetchErr := range fetches.Errors() {
		if errors.Is(fetchErr.Err, context.Canceled) || errors.Is(fetchErr.Err, context.DeadlineExceeded) ||
			errors.Is(fetchErr.Err, kgo.ErrClientClosed) {
			continue
		}
		return fmt.Errorf("fetch topic %q partition %d: %w", fetchErr.Topic, fetchErr.Partition, fetchErr.Err)
	}
	return nil
}
