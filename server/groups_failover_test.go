package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/groups"
)

// Bounds of the group failover test.
const (
	groupFailoverMembers     = 2
	groupFailoverPollRecords = 200
	groupFailoverOffsetPoll  = 50 * time.Millisecond
	groupFailoverPace        = 2 * time.Millisecond
)

// errorLog keeps the error records the nodes log, with the node and time.
type errorLog struct {
	mu      sync.Mutex
	entries []loggedError
}

type loggedError struct {
	node int32
	at   time.Time
	msg  string
}

// logger is node id's logger: errors are kept, the rest dropped.
func (l *errorLog) logger(id int32) *slog.Logger {
	return slog.New(&errorHandler{log: l, node: id})
}

func (l *errorLog) before(msg string, t time.Time) []loggedError {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedError
	for _, e := range l.entries {
		if e.msg == msg && e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

type errorHandler struct {
	log  *errorLog
	node int32
}

func (h *errorHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelError
}
func (h *errorHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorHandler) WithGroup(string) slog.Handler      { return h }
func (h *errorHandler) Handle(_ context.Context, r slog.Record) error {
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	h.log.entries = append(h.log.entries, loggedError{node: h.node, at: time.Now(), msg: r.Message})
	return nil
}

// consumedLog gathers what the group's members consumed: each value with
// the times it was delivered.
type consumedLog struct {
	mu       sync.Mutex
	at       map[string][]time.Time
	failures []error // commits refused, kept for the log
}

func (c *consumedLog) add(fetches kgo.Fetches) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	fetches.EachRecord(func(r *kgo.Record) { c.at[string(r.Value)] = append(c.at[string(r.Value)], now) })
}

func (c *consumedLog) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// consume runs one member: poll, record, commit what was polled before
// letting a rebalance run (so a partition moves on from its committed
// offset), until ctx is done.
func (c *consumedLog) consume(ctx context.Context, member *kgo.Client) {
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, failoverConsumerPollMs*time.Millisecond)
		fetches := member.PollRecords(pollCtx, groupFailoverPollRecords)
		cancel()
		c.add(fetches)
		if err := member.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.failures = append(c.failures, err)
			c.mu.Unlock()
		}
		member.AllowRebalance()
	}
}

// committedWatch reads the group's committed offsets throughout: an offset
// must never move back, whichever node coordinates the group.
type committedWatch struct {
	mu       sync.Mutex
	max      map[int32]int64
	problems []string
}

func (w *committedWatch) run(ctx context.Context, seeds []string, group, topic string) {
	for ctx.Err() == nil {
		fetchCtx, cancel := context.WithTimeout(ctx, failoverStageWaitMax)
		offsets, err := fetchOffsets(fetchCtx, seeds, group)
		cancel()
		if err == nil {
			w.observe(offsets, topic)
		}
		select {
		case <-ctx.Done():
		case <-time.After(groupFailoverOffsetPoll): // polling offsets the members commit
		}
	}
}

func (w *committedWatch) observe(offsets kadm.OffsetResponses, topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for index, o := range offsets[topic] {
		if o.Err != nil {
			continue
		}
		if last, ok := w.max[index]; ok && o.At < last {
			w.problems = append(w.problems, fmt.Sprintf("partition %d: committed offset %d after %d", index, o.At, last))
		}
		w.max[index] = max(w.max[index], o.At)
	}
}

// TestClusterConsumerGroupFailover: three servers in one process, an RF 3
// topic written by an idempotent acks=all producer and read by a franz-go
// consumer group of two members, each bootstrapped through another node,
// committing what it polled before each rebalance. The leader of the
// group's __consumer_offsets partition (the coordinator FindCoordinator
// names) is closed mid-run and started again. The group goes on under the
// new coordinator from its committed offsets: no committed offset read
// throughout ever moves back, every acknowledged record is consumed, a
// record is consumed twice only after the close began, and in the end the
// committed offsets reach the partitions' ends. No node logs a refused
// group change before the failover (non-leading nodes once recorded
// changes and committed nothing).
func TestClusterConsumerGroupFailover(t *testing.T) {
	errs := &errorLog{}
	tc := startClusterLogging(t, errs.logger)
	const topic, group = "group-failover", "group-failover-consumers"
	ctx, cancel := context.WithTimeout(context.Background(), 6*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)

	producer := newFailoverClient(t, tc, kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(failoverStageWaitMax))
	// Paced, so the records run across the failover rather than all
	// before it.
	acks := &ackLog{acks: map[string]ack{}, pace: groupFailoverPace}
	produceCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); acks.produceUntil(produceCtx, producer, topic) }()

	consumed := &consumedLog{at: map[string][]time.Time{}}
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	var members sync.WaitGroup
	for i := range groupFailoverMembers {
		member, err := kgo.NewClient(kgo.SeedBrokers(tc.servers[int32(i+1)].KafkaAddr()),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(250*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(member.Close)
		members.Add(1)
		go func() { defer members.Done(); consumed.consume(consumeCtx, member) }()
	}
	admin := kadm.NewClient(newFailoverClient(t, tc, kgo.MetadataMinAge(250*time.Millisecond)))
	watch := &committedWatch{max: map[int32]int64{}}
	seeds := tc.kafkaAddrs() // the watcher's: the closed node's is refused a while, the others answer
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); watch.run(consumeCtx, seeds, group, topic) }()
	defer func() { stopProducing(); <-produced; stopConsuming(); members.Wait(); <-watchDone }()

	acks.waitAcked(t, failoverStageRecords)
	waitConsumed(t, consumed, failoverStageRecords/2)
	lead := coordinatorOf(ctx, t, tc, admin, group)
	before := committedOffsets(ctx, t, tc, group, topic)
	closing := time.Now()
	tc.stop(lead)
	newLead := tc.leaderOf(groups.OffsetsTopic, 0)
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	waitConsumed(t, consumed, consumed.distinct()+failoverStageRecords)
	after := committedOffsets(ctx, t, tc, group, topic)
	for index, at := range before {
		if after[index] < at {
			t.Fatalf("partition %d: committed %d before the failover, %d under node %d", index, at, after[index], newLead)
		}
	}
	tc.restart(lead)
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	stopProducing()
	<-produced
	if len(acks.failed) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(acks.failed), acks.issued, acks.failed[0])
	}
	acked := acks.snapshot()
	waitAllConsumed(t, consumed, acked)
	waitCommittedEnds(ctx, t, tc, group, topic, acked)
	stopConsuming()
	members.Wait()
	<-watchDone

	checkConsumedOnce(t, consumed, closing)
	watch.mu.Lock()
	if len(watch.problems) > 0 {
		t.Fatalf("the committed offsets moved back %d times, first: %s", len(watch.problems), watch.problems[0])
	}
	watch.mu.Unlock()
	if early := errs.before("recording group change", closing); len(early) > 0 {
		t.Fatalf("node %d refused a group change before the failover (%d in all)", early[0].node, len(early))
	}
	consumed.mu.Lock()
	t.Logf("coordinator node %d closed, node %d took over; %d records acknowledged and consumed, %d commits refused on the way",
		lead, newLead, len(acked), len(consumed.failures))
	consumed.mu.Unlock()
}

// coordinatorOf returns the node FindCoordinator names for group, which
// must be the leader of the offsets partition every node agrees on.
func coordinatorOf(ctx context.Context, t *testing.T, tc *testCluster, admin *kadm.Client, group string) int32 {
	t.Helper()
	lead := tc.leaderOf(groups.OffsetsTopic, 0)
	res := admin.FindGroupCoordinators(ctx, group)
	if err := res.Error(); err != nil {
		t.Fatalf("find the coordinator: %v", err)
	}
	for _, r := range res {
		if r.NodeID != lead {
			t.Fatalf("FindCoordinator names node %d, node %d leads %s-0", r.NodeID, lead, groups.OffsetsTopic)
		}
	}
	return lead
}

// fetchOffsets fetches the group's committed offsets with a client of its
// own: franz-go's sharded OffsetFetch keeps a coordinator it cannot dial
// in its cache (only error codes in replies clear it), so a client that
// asked the closed node keeps asking it.
func fetchOffsets(ctx context.Context, seeds []string, group string) (kadm.OffsetResponses, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return kadm.NewClient(client).FetchOffsets(ctx, group)
}

// committedOffsets fetches the group's committed offsets of topic, retried
// while the coordinator moves.
func committedOffsets(ctx context.Context, t *testing.T, tc *testCluster, group, topic string) map[int32]int64 {
	t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		offsets, err := fetchOffsets(ctx, tc.kafkaAddrs(), group)
		if err == nil {
			err = offsets.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			for index, o := range offsets[topic] {
				out[index] = o.At
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch the committed offsets: %v", err)
		}
		time.Sleep(groupFailoverOffsetPoll) // the coordinator is moving
	}
}

func waitConsumed(t *testing.T, c *consumedLog, n int) {
	t.Helper()
	n = min(n, failoverRecordsMax)
	deadline := time.Now().Add(failoverStageWaitMax)
	for c.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records consumed after %s, want %d", c.distinct(), failoverStageWaitMax, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter the members raise
	}
}

// waitAllConsumed waits until every acknowledged record was consumed.
func waitAllConsumed(t *testing.T, c *consumedLog, acked map[string]ack) {
	t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		missing := ""
		c.mu.Lock()
		for v := range acked {
			if len(c.at[v]) == 0 {
				missing = v
				break
			}
		}
		c.mu.Unlock()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q acknowledged at %+v, never consumed", missing, acked[missing])
		}
		time.Sleep(10 * time.Millisecond) // polling what the members consumed
	}
}

// waitCommittedEnds waits until the group committed each partition's end:
// the offset after its last acknowledged record.
func waitCommittedEnds(ctx context.Context, t *testing.T, tc *testCluster, group, topic string, acked map[string]ack) {
	t.Helper()
	ends := map[int32]int64{}
	for _, a := range acked {
		ends[a.partition] = max(ends[a.partition], a.offset+1)
	}
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		got := committedOffsets(ctx, t, tc, group, topic)
		short := int32(-1)
		for index, end := range ends {
			if got[index] < end {
				short = index
			}
		}
		if short < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition %d: committed %d, end %d", short, got[short], ends[short])
		}
		time.Sleep(groupFailoverOffsetPoll) // polling what the members commit
	}
}

// checkConsumedOnce: no record was delivered twice before the failover
// began (a rebalance moves a partition on from what was committed).
func checkConsumedOnce(t *testing.T, c *consumedLog, failover time.Time) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	dups := 0
	for v, at := range c.at {
		if len(at) > 1 {
			dups++
			if at[1].Before(failover) {
				t.Fatalf("%q consumed %d times, again %s before the failover", v, len(at), failover.Sub(at[1]))
			}
		}
	}
	t.Logf("%d records consumed again after the failover began", dups)
}
