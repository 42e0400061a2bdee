package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceRun is one timed burst of producing from several clients sharing a
// record budget, a deadline and a pacing schedule.
type produceRun struct {
	options     Options
	clock       Clock
	start       time.Time
	deadline    time.Time
	pacer       Pacer
	payload     *payload
	timestamped bool // e2e: values begin with their send time
	latency     *LatencyRecorder

	issued atomic.Int64 // record numbers handed out, including the one that ended the budget
	sent   atomic.Int64
	acked  atomic.Int64
	bytes  atomic.Int64
	failed atomic.Int64
	// lastAckNs is the latest acknowledgement, in nanoseconds after start.
	lastAckNs atomic.Int64

	errorMu    sync.Mutex
	firstError error // guarded by errorMu: promises may outlive a timed-out flush
}

// produceResult is what a produce run counted.
type produceResult struct {
	sent, acked, bytes, failed int64
	firstError                 error
	// elapsed runs from the start to the last acknowledgement.
	elapsed time.Duration
	latency LatencySummary
}

func newProduceRun(options Options, clock Clock, start time.Time, timestamped bool) *produceRun {
	return &produceRun{
		options:     options,
		clock:       clock,
		start:       start,
		deadline:    start.Add(options.Duration),
		pacer:       NewPacer(options.RatePerSecond, start),
		payload:     newPayload(options.RecordBytes, options.Keys),
		timestamped: timestamped,
		latency:     NewLatencyRecorder(0),
	}
}

// run sends from every client until the budget, the deadline or ctx ends
// it, then waits up to the drain timeout for the records already sent.
// Records in flight are never cancelled by ctx: an interrupt stops sending,
// and the summary still counts what was acknowledged.
func (r *produceRun) run(ctx context.Context, clients []*kgo.Client) produceResult {
	var senders sync.WaitGroup
	for _, client := range clients {
		senders.Go(func() { r.send(ctx, client) })
	}
	senders.Wait()

	drainContext, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.options.DrainTimeout)
	defer cancel()
	var flushErrors []error
	for _, client := range clients {
		if err := client.Flush(drainContext); err != nil {
			flushErrors = append(flushErrors, err)
		}
	}
	result := produceResult{
		sent:       r.sent.Load(),
		acked:      r.acked.Load(),
		bytes:      r.bytes.Load(),
		failed:     r.failed.Load(),
		firstError: r.recordedError(),
		elapsed:    time.Duration(r.lastAckNs.Load()),
		latency:    r.latency.Summary(),
	}
	if result.acked == 0 {
		result.elapsed = r.clock.Now().Sub(r.start)
	}
	if len(flushErrors) > 0 {
		unanswered := result.sent - result.acked - result.failed
		result.failed += unanswered
		if result.firstError == nil {
			result.firstError = fmt.Errorf("%d records unanswered after %s: %w",
				unanswered, r.options.DrainTimeout, errors.Join(flushErrors...))
		}
	}
	return result
}

// send is one client's loop.
func (r *produceRun) send(ctx context.Context, client *kgo.Client) {
	// Records already handed over must not fail because sending stopped.
	produceContext := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		n := r.issued.Add(1) - 1
		if n >= r.options.Records || !r.clock.Now().Before(r.deadline) {
			return
		}
		sentAt, err := r.pacer.Wait(ctx, r.clock, n)
		if err != nil || !sentAt.Before(r.deadline) {
			return
		}
		record := &kgo.Record{Key: r.payload.key(n)}
		if r.timestamped {
			record.Value = r.payload.timestampedValue(n, sentAt.Sub(r.start))
		} else {
			record.Value = r.payload.value(n)
		}
		r.sent.Add(1)
		client.Produce(produceContext, record, func(record *kgo.Record, err error) {
			r.finish(record, sentAt, err)
		})
	}
}

// finish is the promise of one record; the client calls promises one at a
// time per client, but several clients call concurrently.
func (r *produceRun) finish(record *kgo.Record, sentAt time.Time, err error) {
	now := r.clock.Now()
	if err != nil {
		r.failed.Add(1)
		r.errorMu.Lock()
		if r.firstError == nil {
			r.firstError = err
		}
		r.errorMu.Unlock()
		return
	}
	r.latency.Record(now.Sub(sentAt))
	r.bytes.Add(int64(len(record.Key) + len(record.Value)))
	r.acked.Add(1)
	sinceStart := int64(now.Sub(r.start))
	for {
		last := r.lastAckNs.Load()
		if sinceStart <= last || r.lastAckNs.CompareAndSwap(last, sinceStart) {
			return
		}
	}
}

func (r *produceRun) recordedError() error {
	r.errorMu.Lock()
	defer r.errorMu.Unlock()
	return r.firstError
}

// dialProducers opens count producer clients and checks that each reaches
// a broker, so connection set-up is not timed. On error none stays open.
func dialProducers(ctx context.Context, dial Dialer, options []kgo.Opt, count int) ([]*kgo.Client, error) {
	clients := make([]*kgo.Client, 0, count)
	for range count {
		client, err := dial(options...)
		if err == nil {
			if err = client.Ping(ctx); err != nil {
				client.Close()
				err = fmt.Errorf("reach a broker: %w", err)
			}
		}
		if err != nil {
			closeAll(clients)
			return nil, fmt.Errorf("producer %d of %d: %w", len(clients)+1, count, err)
		}
		clients = append(clients, client)
	}
	return clients, nil
}

func closeAll(clients []*kgo.Client) {
	for _, client := range clients {
		client.Close()
	}
}
