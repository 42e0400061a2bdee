package loadgen

import (
	"context"
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
	// answeredUnknown counts answers that leave a record's fate open.
	answeredUnknown atomic.Int64
	// lastAckNs is the latest acknowledgement, in nanoseconds after start.
	lastAckNs atomic.Int64
	// lastAnswerNs is the latest answer of any kind, in nanoseconds after
	// start: what the stall watch measures silence from.
	lastAnswerNs atomic.Int64

	errorMu    sync.Mutex
	firstError error // guarded by errorMu: promises may outlive the run
}

// produceResult is what a produce run counted.
type produceResult struct {
	sent, acked, bytes, failed int64
	// unknown counts records sent but never answered, or answered with an
	// error that leaves open whether they were written.
	unknown    int64
	firstError error
	// stopped says why the run was abandoned with records unanswered; nil
	// when every record was answered.
	stopped error
	// elapsed runs from the start to the last acknowledgement.
	elapsed time.Duration
	latency LatencySummary
}

// interruptDrainMax bounds the wait for records already sent once the run
// is interrupted: long enough for a live broker to answer them, short enough
// that Ctrl-C stops a run whose broker is gone.
const interruptDrainMax = time.Second

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
// it, then waits for the records already sent. The run is abandoned, and
// what is still unanswered counted as unknown, when the cluster has answered
// nothing for the drain timeout while records were outstanding (a dead
// broker), or interruptDrainMax after ctx ended. Records in flight are not
// cancelled by ctx itself: an interrupt stops sending, and the summary
// still counts what a live broker acknowledges.
func (r *produceRun) run(ctx context.Context, clients []*kgo.Client) produceResult {
	abandoned, abandon := context.WithCancelCause(context.WithoutCancel(ctx))
	defer abandon(nil)
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() { r.watch(ctx, abandon, watchDone) })

	var senders sync.WaitGroup
	for _, client := range clients {
		senders.Go(func() { r.send(ctx, abandoned, client) })
	}
	senders.Wait()
	for _, client := range clients {
		// Flush returns early only when abandoned, whose cause is the
		// error reported below.
		_ = client.Flush(abandoned)
	}
	close(watchDone)
	watch.Wait()
	return r.result(context.Cause(abandoned))
}

// result counts the run's outcome; abandonCause is why it was abandoned,
// nil when every record was answered.
func (r *produceRun) result(abandonCause error) produceResult {
	result := produceResult{
		sent:       r.sent.Load(),
		acked:      r.acked.Load(),
		bytes:      r.bytes.Load(),
		failed:     r.failed.Load(),
		firstError: r.recordedError(),
		elapsed:    time.Duration(r.lastAckNs.Load()),
		latency:    r.latency.Summary(),
	}
	// Late promises of an abandoned run may still arrive: whatever was not
	// acknowledged or refused by now is unknown.
	result.unknown = max(0, result.sent-result.acked-result.failed)
	if result.acked == 0 {
		result.elapsed = r.clock.Now().Sub(r.start)
	}
	result.stopped = abandonCause
	return result
}

// stallCheckInterval is how often the stall watch looks at the answers.
const stallCheckInterval = 100 * time.Millisecond

// watch abandons the run when records are outstanding and nothing was
// answered for the drain timeout, or interruptDrainMax after ctx ended,
// until done closes.
func (r *produceRun) watch(ctx context.Context, abandon context.CancelCauseFunc, done <-chan struct{}) {
	ticker := time.NewTicker(stallCheckInterval)
	defer ticker.Stop()
	interrupted := ctx.Done()
	var interruptDeadline <-chan time.Time
	drainAfterInterrupt := min(interruptDrainMax, r.options.DrainTimeout)
	for {
		select {
		case <-done:
			return
		case <-interrupted:
			interrupted = nil
			timer := time.NewTimer(drainAfterInterrupt)
			defer timer.Stop()
			interruptDeadline = timer.C
		case <-interruptDeadline:
			abandon(fmt.Errorf("%w: stopped waiting for answers %s after it", context.Cause(ctx), drainAfterInterrupt))
			return
		case <-ticker.C:
			if r.stalled() {
				abandon(fmt.Errorf("no answer from the cluster for %s (--timeout) with %d records outstanding",
					r.options.DrainTimeout, r.outstanding()))
				return
			}
		}
	}
}

func (r *produceRun) outstanding() int64 {
	return r.sent.Load() - r.acked.Load() - r.failed.Load() - r.answeredUnknown.Load()
}

// stalled reports records outstanding with no answer for the drain timeout.
func (r *produceRun) stalled() bool {
	if r.outstanding() <= 0 {
		return false
	}
	silence := r.clock.Now().Sub(r.start) - time.Duration(r.lastAnswerNs.Load())
	return silence >= r.options.DrainTimeout
}

// send is one client's loop. ctx stops sending; abandoned also ends a
// Produce blocked on a full buffer.
func (r *produceRun) send(ctx, abandoned context.Context, client *kgo.Client) {
	for ctx.Err() == nil && abandoned.Err() == nil {
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
		// Records already handed over must not fail because sending
		// stopped, only when the run is abandoned.
		client.Produce(abandoned, record, func(record *kgo.Record, err error) {
			r.finish(record, sentAt, err)
		})
	}
}

// finish is the promise of one record; the client calls promises one at a
// time per client, but several clients call concurrently. An error that
// leaves the record's fate open is not counted here: the record stays
// outstanding, and is counted unknown when the run ends.
func (r *produceRun) finish(record *kgo.Record, sentAt time.Time, err error) {
	now := r.clock.Now()
	sinceStart := int64(now.Sub(r.start))
	storeLatest(&r.lastAnswerNs, sinceStart)
	switch outcomeOf(err) {
	case outcomeUnknown:
		r.answeredUnknown.Add(1)
		r.recordError(err)
		return
	case outcomeFailed:
		r.failed.Add(1)
		r.recordError(err)
		return
	}
	r.latency.Record(now.Sub(sentAt))
	r.bytes.Add(int64(len(record.Key) + len(record.Value)))
	r.acked.Add(1)
	storeLatest(&r.lastAckNs, sinceStart)
}

// storeLatest raises value to at least latest.
func storeLatest(value *atomic.Int64, latest int64) {
	for {
		last := value.Load()
		if latest <= last || value.CompareAndSwap(last, latest) {
			return
		}
	}
}

func (r *produceRun) recordError(err error) {
	r.errorMu.Lock()
	defer r.errorMu.Unlock()
	if r.firstError == nil {
		r.firstError = err
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

// outcomes are the result's counts for a Summary: the reason is why the run
// stopped waiting, if it did, else the first error.
func (r produceResult) outcomes() outcomes {
	reason := r.firstError
	if r.stopped != nil {
		reason = r.stopped
	}
	return outcomes{records: r.acked, bytes: r.bytes, failed: r.failed, unknown: r.unknown,
		reason: reason, elapsed: r.elapsed}
}
