package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EndToEnd produces timestamped records while a consumer that started at
// the high watermarks reads them back, and measures each record's time from
// send to receipt. The consumer only sees records once they are below the
// high watermark, so the latency includes the broker's sync even with acks=1.
// The topic should be used by this run alone: any other record of 8 bytes
// or more would be read as a timestamp.
func (r *Runner) EndToEnd(ctx context.Context, options Options) (Summary, error) {
	if err := options.Validate(WorkloadEndToEnd); err != nil {
		return Summary{}, err
	}
	clientOptions, err := options.Producer.ClientOptions(options.Topic, options.DrainTimeout)
	if err != nil {
		return Summary{}, err
	}
	partitions, err := r.prepareTopic(ctx, options)
	if err != nil {
		return Summary{}, err
	}
	consumer, err := r.dialEndConsumer(ctx, options)
	if err != nil {
		return Summary{}, err
	}
	defer consumer.Close()
	producers, err := dialProducers(ctx, r.Dial, clientOptions, options.Producers)
	if err != nil {
		return Summary{}, err
	}
	defer closeAll(producers)

	summary := newSummary(WorkloadEndToEnd, options, partitions)
	var produced produceResult
	var receive *receiveRun
	var receiveErr error
	r.measure(ctx, &summary, func() {
		start := r.clock().Now()
		receive = newReceiveRun(r.clock(), start)
		stop := startProgress(r.Progress, WorkloadEndToEnd, &receive.received)
		// Like the producers' acknowledgements, deliveries of records
		// already sent are awaited even after an interrupt.
		receiving, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wait sync.WaitGroup
		wait.Go(func() { receiveErr = receive.run(receiving, consumer) })
		produced = newProduceRun(options, r.clock(), start, true).run(ctx, producers)
		receive.waitFor(produced.acked, deliveryWait(ctx, options))
		cancel()
		wait.Wait()
		stop()
	})
	latency := receive.latency.Summary()
	summary.Latency = &latency
	received := receive.received.Load()
	outcomes := produced.outcomes()
	outcomes.records, outcomes.bytes, outcomes.elapsed = received, receive.bytes.Load(), receive.elapsed()
	if missing := produced.acked - received; missing > 0 {
		// Acknowledged, so written; whether they are readable is what the
		// run could not see in time.
		outcomes.unknown += missing
		if outcomes.reason == nil {
			outcomes.reason = fmt.Errorf("%d acknowledged records not received within %s", missing, deliveryWait(ctx, options))
		}
	}
	if err := summary.finish(outcomes); err != nil {
		return summary, err
	}
	return summary, receiveErr
}

// dialEndConsumer returns a consumer positioned at every partition's
// current high watermark, so it sees exactly the records sent after.
func (r *Runner) dialEndConsumer(ctx context.Context, options Options) (*kgo.Client, error) {
	topic := options.Topic
	var ends map[int32]int64
	err := r.withAdmin(ctx, func(ctx context.Context, admin *kadm.Client) error {
		var err error
		ends, err = listEnds(ctx, admin, topic)
		return err
	})
	if err != nil {
		return nil, err
	}
	offsets := make(map[int32]kgo.Offset, len(ends))
	for partition, end := range ends {
		offsets[partition] = kgo.NewOffset().At(end)
	}
	consumer, err := r.Dial(append(options.consumerOptions(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
	if err != nil {
		return nil, err
	}
	if err := consumer.Ping(ctx); err != nil {
		consumer.Close()
		return nil, fmt.Errorf("reach a broker: %w", err)
	}
	return consumer, nil
}

// receiveRun is the consuming half of an e2e run.
type receiveRun struct {
	clock    Clock
	start    time.Time
	latency  *LatencyRecorder
	received atomic.Int64
	bytes    atomic.Int64
	// lastNs is the last receipt, in nanoseconds after start.
	lastNs atomic.Int64
	// progressed is signalled after each poll that counted records.
	progressed chan struct{}
}

func newReceiveRun(clock Clock, start time.Time) *receiveRun {
	return &receiveRun{clock: clock, start: start, latency: NewLatencyRecorder(0), progressed: make(chan struct{}, 1)}
}

// run polls until ctx is done; only a fetch error is an error.
func (r *receiveRun) run(ctx context.Context, consumer *kgo.Client) error {
	for {
		fetches := consumer.PollRecords(ctx, pollRecordsMax)
		if ctx.Err() != nil {
			return nil
		}
		if err := fetchError(fetches); err != nil {
			return err
		}
		now := r.clock.Now()
		receivedAt := now.Sub(r.start)
		counted := false
		for iter := fetches.RecordIter(); !iter.Done(); {
			record := iter.Next()
			sent, ok := sentAt(record.Value)
			if !ok {
				continue
			}
			r.latency.Record(receivedAt - sent)
			r.bytes.Add(int64(len(record.Key) + len(record.Value)))
			r.received.Add(1)
			counted = true
		}
		if counted {
			r.lastNs.Store(int64(receivedAt))
			select {
			case r.progressed <- struct{}{}:
			default:
			}
		}
	}
}

// waitFor returns once count records were received, or after timeout.
func (r *receiveRun) waitFor(count int64, timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for r.received.Load() < count {
		select {
		case <-r.progressed:
		case <-timer.C:
			return
		}
	}
}

// elapsed runs from the start to the last receipt.
func (r *receiveRun) elapsed() time.Duration {
	return time.Duration(r.lastNs.Load())
}

// deliveryWait is how long an e2e run waits for acknowledged records to be
// delivered: --timeout, or less once interrupted, since a dead broker
// delivers nothing more.
func deliveryWait(ctx context.Context, options Options) time.Duration {
	if ctx.Err() != nil {
		return min(options.DrainTimeout, interruptDrainMax)
	}
	return options.DrainTimeout
}
