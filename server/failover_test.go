package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/partition"
)

// Bounds of the failover test: records in flight and in all, and the wait
// for any one stage.
const (
	failoverPartitions     = 3
	failoverInflightMax    = 64
	failoverRecordsMax     = 30000
	failoverStageRecords   = 600 // acknowledged between two stages
	failoverStageWaitMax   = 30 * time.Second
	failoverConsumerPollMs = 250
)

// ack is where the cluster acknowledged a record: its partition and offset.
type ack struct {
	partition int32
	offset    int64
	at        time.Time
}

// ackLog gathers the acknowledgements of a producer running in the
// background.
type ackLog struct {
	mu     sync.Mutex
	acks   map[string]ack // by value; each value is produced once
	failed []error
	issued int
	pace   time.Duration // between two records issued; none when zero
}

func (l *ackLog) record(r *kgo.Record, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed = append(l.failed, fmt.Errorf("%s: %w", r.Value, err))
		return
	}
	l.acks[string(r.Value)] = ack{partition: r.Partition, offset: r.Offset, at: time.Now()}
}

func (l *ackLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

func (l *ackLog) snapshot() map[string]ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acks)
}

// firstAckAfter is the earliest acknowledgement on a partition at or after
// t, or the zero time.
func (l *ackLog) firstAckAfter(index int32, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.acks {
		if a.partition == index && !a.at.Before(t) && (first.IsZero() || a.at.Before(first)) {
			first = a.at
		}
	}
	return first
}

// waitAcked waits until n records (or all the producer sends) are
// acknowledged, failing on any failed produce.
func (l *ackLog) waitAcked(t *testing.T, n int) {
	t.Helper()
	n = min(n, failoverRecordsMax)
	deadline := time.Now().Add(failoverStageWaitMax)
	for l.count() < n {
		l.mu.Lock()
		failed := slices.Clone(l.failed)
		l.mu.Unlock()
		if len(failed) > 0 {
			t.Fatalf("%d produces failed, first: %v", len(failed), failed[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records acknowledged after %s, want %d", l.count(), failoverStageWaitMax, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter the producer's callbacks raise
	}
}

// produceUntil produces unique values round-robin over the partitions,
// at most failoverInflightMax at a time and failoverRecordsMax in all,
// until ctx is done; then it waits for every callback.
func (l *ackLog) produceUntil(ctx context.Context, client *kgo.Client, topic string) {
	inflight := make(chan struct{}, failoverInflightMax)
	var wg sync.WaitGroup
	for i := 0; i < failoverRecordsMax; i++ {
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if l.pace > 0 {
			time.Sleep(l.pace) // a rate, not a wait for anything
		}
		l.mu.Lock()
		l.issued++
		l.mu.Unlock()
		r := &kgo.Record{Topic: topic, Partition: int32(i % failoverPartitions), Value: fmt.Appendf(nil, "v-%06d", i)}
		wg.Add(1)
		// The record's own context: records already sent finish even
		// after ctx is done, so every issued record gets an answer.
		client.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			l.record(r, err)
			<-inflight
			wg.Done()
		})
	}
	wg.Wait()
}

// hwmWatch is a consumer polling every partition from the start
// throughout the test: the high watermark it sees must never move back,
// and no offset may come with two different values.
type hwmWatch struct {
	mu       sync.Mutex
	hwm      map[int32]int64
	seen     map[int32]map[int64]string
	problems []string
}

func (w *hwmWatch) run(ctx context.Context, client *kgo.Client) {
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, failoverConsumerPollMs*time.Millisecond)
		fetches := client.PollFetches(pollCtx)
		cancel()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err != nil {
				return // a leader change on the way: the client follows it
			}
			w.observe(p)
		})
	}
}

func (w *hwmWatch) observe(p kgo.FetchTopicPartition) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if last, ok := w.hwm[p.Partition]; ok && p.HighWatermark < last {
		w.problems = append(w.problems, fmt.Sprintf("partition %d: high watermark %d after %d", p.Partition, p.HighWatermark, last))
	}
	w.hwm[p.Partition] = max(w.hwm[p.Partition], p.HighWatermark)
	for _, r := range p.Records {
		if r.Offset >= p.HighWatermark {
			w.problems = append(w.problems, fmt.Sprintf("partition %d: record at %d at or past the high watermark %d", p.Partition, r.Offset, p.HighWatermark))
		}
		if old, ok := w.seen[p.Partition][r.Offset]; ok && old != string(r.Value) {
			w.problems = append(w.problems, fmt.Sprintf("partition %d offset %d: consumed %q, then %q", p.Partition, r.Offset, old, r.Value))
		}
		w.seen[p.Partition][r.Offset] = string(r.Value)
	}
}

// TestClusterFailoverWithFranzGo: three servers in one process, an RF 3
// topic created with kadm, an idempotent franz-go producer at acks=all
// and a consumer polling throughout. The leader of partition 0 is closed
// while producing: the clients follow the new leader with no code of
// their own (NOT_LEADER_OR_FOLLOWER or a refused connection, a metadata
// refresh), the node is started again from its data directory and
// catches up. Every acknowledged record is then on every replica exactly
// once at its acknowledged offset, the replicas agree offset by offset,
// and the consumer never saw a high watermark move back or an offset
// change its record. It runs with franz-go's defaults, whose 5 s
// MetadataMinAge spaces the refreshes that find the new leader, and with
// a 250 ms one. A producer at acks=1 is served too.
func TestClusterFailoverWithFranzGo(t *testing.T) {
	tc := startCluster(t)
	clients := []struct {
		name string
		opts []kgo.Opt
	}{
		{"defaults", nil},
		{"metadata-min-age-250ms", []kgo.Opt{kgo.MetadataMinAge(250 * time.Millisecond)}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) { failover(t, tc, "failover-"+c.name, c.opts) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), failoverStageWaitMax)
	defer cancel()
	produceLeaderAck(ctx, t, tc, "failover-defaults")
}

// failover runs one failover of partition 0's leader under a producer and
// a consumer made with opts, and checks the replicas and what the
// consumer saw.
func failover(t *testing.T, tc *testCluster, topic string, opts []kgo.Opt) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)

	producer := newFailoverClient(t, tc, append([]kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(failoverStageWaitMax)}, opts...)...)
	consumer := newFailoverClient(t, tc, append([]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart(),
	}})}, opts...)...)
	watch := &hwmWatch{hwm: map[int32]int64{}, seen: map[int32]map[int64]string{0: {}, 1: {}, 2: {}}}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); watch.run(watchCtx, consumer) }()

	acks := &ackLog{acks: map[string]ack{}}
	produceCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); acks.produceUntil(produceCtx, producer, topic) }()
	defer func() { stopProducing(); <-produced; stopWatch(); <-watchDone }()

	acks.waitAcked(t, failoverStageRecords)
	lead := tc.leaderOf(topic, 0)
	closing := time.Now()
	tc.stop(lead)
	closed := time.Now()
	newLead := tc.leaderOf(topic, 0)
	elected := time.Now()
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	first := acks.firstAckAfter(0, closed)
	t.Logf("node %d (leader of %s-0) closed in %s; node %d leads %s after the close began, first acks=all record acknowledged there after %s",
		lead, topic, closed.Sub(closing).Round(time.Millisecond), newLead, elected.Sub(closing).Round(time.Millisecond), first.Sub(closing).Round(time.Millisecond))
	restarting := time.Now()
	tc.restart(lead)
	t.Logf("node %d started again in %s", lead, time.Since(restarting).Round(time.Millisecond))
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	stopProducing()
	<-produced

	acked := acks.snapshot()
	if len(acks.failed) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(acks.failed), acks.issued, acks.failed[0])
	}
	tc.waitCaughtUp(t, topic, acked)
	tc.checkReplicas(t, topic, acked)
	stopWatch()
	<-watchDone
	checkWatch(t, watch, acked)
	t.Logf("%d records acknowledged at acks=all over %d partitions", len(acked), failoverPartitions)
}

// createReplicated creates the test's topic, RF 3, with kadm through any
// node, and waits until every node agrees on a leader of each partition.
func createReplicated(ctx context.Context, t *testing.T, tc *testCluster, topic string, opts ...kgo.Opt) {
	t.Helper()
	client := newFailoverClient(t, tc, opts...)
	admin := kadm.NewClient(client)
	res, err := admin.CreateTopic(ctx, failoverPartitions, 3, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	for i := range int32(failoverPartitions) {
		tc.leaderOf(topic, i)
	}
}

func newFailoverClient(t *testing.T, tc *testCluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tc.kafkaAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return client
}

// leaderOf waits until every running node names the same running leader
// of a partition, which alone serves it, and returns it.
func (tc *testCluster) leaderOf(topic string, index int32) int32 {
	tc.t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		lead := int32(-1)
		agreed := true
		for id, s := range tc.servers {
			l, err := s.Cluster().Leader(topic, index)
			if err != nil || l.Node < 1 || (lead != -1 && l.Node != lead) || l.Local != (l.Node == id) {
				agreed = false
				break
			}
			lead = l.Node
		}
		if _, running := tc.servers[lead]; agreed && running {
			return lead
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("no leader of %s-%d agreed on after %s", topic, index, failoverStageWaitMax)
		}
		time.Sleep(5 * time.Millisecond) // polling state across nodes: no one event to wait on
	}
}

// waitCaughtUp waits until every node's replica of every partition has
// applied past the highest acknowledged offset.
func (tc *testCluster) waitCaughtUp(t *testing.T, topic string, acked map[string]ack) {
	t.Helper()
	need := map[int32]int64{}
	for _, a := range acked {
		need[a.partition] = max(need[a.partition], a.offset+1)
	}
	deadline := time.Now().Add(failoverStageWaitMax)
	for id, s := range tc.servers {
		for index, end := range need {
			p, err := s.Cluster().Partition(topic, index)
			if err != nil {
				t.Fatalf("node %d: %v", id, err)
			}
			for p.HighWatermark() < end {
				if time.Now().After(deadline) {
					t.Fatalf("node %d: %s-%d applied to %d, acknowledged up to %d", id, topic, index, p.HighWatermark(), end)
				}
				time.Sleep(5 * time.Millisecond) // polling another node's catch-up
			}
		}
	}
}

// checkReplicas reads every node's replica of every partition directly:
// each acknowledged record is there exactly once, at its acknowledged
// offset, and the replicas hold the same record at every offset.
func (tc *testCluster) checkReplicas(t *testing.T, topic string, acked map[string]ack) {
	t.Helper()
	for index := range int32(failoverPartitions) {
		var first map[int64]string
		for id, s := range tc.servers {
			p, err := s.Cluster().Partition(topic, index)
			if err != nil {
				t.Fatalf("node %d: %v", id, err)
			}
			held := replicaRecords(t, p)
			checkAcked(t, fmt.Sprintf("node %d %s-%d", id, topic, index), index, held, acked)
			if first == nil {
				first = held
				continue
			}
			for offset, v := range held {
				if w, ok := first[offset]; ok && w != v {
					t.Fatalf("%s-%d offset %d: node %d holds %q, another node %q", topic, index, offset, id, v, w)
				}
			}
		}
	}
}

// checkAcked: every record acknowledged on partition index is in held at
// its acknowledged offset, and no value is held twice.
func checkAcked(t *testing.T, where string, index int32, held map[int64]string, acked map[string]ack) {
	t.Helper()
	offsets := map[string]int64{}
	for offset, v := range held {
		if other, dup := offsets[v]; dup {
			t.Fatalf("%s: %q at offsets %d and %d", where, v, other, offset)
		}
		offsets[v] = offset
	}
	for v, a := range acked {
		if a.partition != index {
			continue
		}
		if got, ok := offsets[v]; !ok || got != a.offset {
			t.Fatalf("%s: %q acknowledged at offset %d, held at %d (held: %t)", where, v, a.offset, got, ok)
		}
	}
}

// replicaRecords reads a replica up to its high watermark as offset →
// value.
func replicaRecords(t *testing.T, p *partition.Partition) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	hwm := p.HighWatermark()
	for from := p.LogStartOffset(); from < hwm; {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) == 0 {
			t.Fatalf("%s-%d: nothing read at %d below the high watermark %d", p.Topic(), p.Index(), from, hwm)
		}
		for rest := res.Records; len(rest) > 0; {
			h, whole, next, err := batch.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = next
			if h.Control() {
				from = max(from, h.NextOffset())
				continue
			}
			recs, err := batch.Records(whole, batch.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset >= from && r.Offset < hwm {
					out[r.Offset] = string(r.Value)
				}
			}
			from = max(from, h.NextOffset())
		}
	}
	return out
}

// checkWatch: the consumer saw no high watermark move back and no offset
// change its value, and what it consumed agrees with the acknowledgements.
func checkWatch(t *testing.T, w *hwmWatch, acked map[string]ack) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.problems) > 0 {
		t.Fatalf("the consumer saw %d problems, first: %s", len(w.problems), w.problems[0])
	}
	for v, a := range acked {
		if got, ok := w.seen[a.partition][a.offset]; ok && got != v {
			t.Fatalf("partition %d offset %d: acknowledged %q, consumed %q", a.partition, a.offset, v, got)
		}
	}
	for index := range int32(failoverPartitions) {
		if len(w.seen[index]) == 0 {
			t.Fatalf("the consumer read nothing of partition %d", index)
		}
	}
}

// produceLeaderAck: a producer at acks=1 (idempotence off, as Kafka
// requires) is served by the leaders, and its records are where it was
// told once the replicas applied them.
func produceLeaderAck(ctx context.Context, t *testing.T, tc *testCluster, topic string) {
	t.Helper()
	client := newFailoverClient(t, tc, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	acked := map[string]ack{}
	for i := range int32(failoverPartitions) {
		r := &kgo.Record{Topic: topic, Partition: i, Value: fmt.Appendf(nil, "leader-ack-%d", i)}
		if err := client.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("acks=1 produce to partition %d: %v", i, err)
		}
		acked[string(r.Value)] = ack{partition: r.Partition, offset: r.Offset}
	}
	tc.waitCaughtUp(t, topic, acked)
	for index := range int32(failoverPartitions) {
		for id, s := range tc.servers {
			p, err := s.Cluster().Partition(topic, index)
			if err != nil {
				t.Fatal(err)
			}
			held := replicaRecords(t, p)
			for v, a := range acked {
				if a.partition == index && held[a.offset] != v {
					t.Fatalf("node %d %s-%d: acks=1 record %q acknowledged at %d, held %q", id, topic, index, v, a.offset, held[a.offset])
				}
			}
		}
	}
}
