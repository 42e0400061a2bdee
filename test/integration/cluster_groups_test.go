package integration

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumed is what the members of a consumer group consumed: each
// value with the times it was delivered.
type groupConsumed struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (c *groupConsumed) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// consume runs one member: poll, record, commit what was polled before a
// rebalance may run, until ctx is done.
func (c *groupConsumed) consume(ctx context.Context, member *kgo.Client) {
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fetches := member.PollRecords(pollCtx, 200)
		cancel()
		now := time.Now()
		c.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) { c.at[string(r.Value)] = append(c.at[string(r.Value)], now) })
		c.mu.Unlock()
		_ = member.CommitUncommittedOffsets(ctx) // refused while the coordinator moves: the next commit covers it
		member.AllowRebalance()
	}
}

// groupOffsets fetches the group's committed offsets of topic (see
// fetchGroupOffsets), retried while the coordinator moves.
func groupOffsets(ctx context.Context, t *testing.T, seeds []string, group, topic string) map[int32]int64 {
	t.Helper()
	deadline := time.Now().Add(clusterStageWaitMax)
	for {
		out, err := fetchGroupOffsets(ctx, seeds, group, topic)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch the committed offsets: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the coordinator is moving
	}
}

// fetchGroupOffsets fetches the group's committed offsets of topic once,
// with a client of its own (franz-go keeps a coordinator it cannot dial in
// the cache of its sharded OffsetFetch).
func fetchGroupOffsets(ctx context.Context, seeds []string, group, topic string) (map[int32]int64, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	offsets, err := kadm.NewClient(client).FetchOffsets(ctx, group)
	if err == nil {
		err = offsets.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for index, o := range offsets[topic] {
		out[index] = o.At
	}
	return out, nil
}

// waitCommitted waits until the group's committed offsets of topic reach
// ends.
func waitCommitted(ctx context.Context, t *testing.T, seeds []string, group, topic string, ends map[int32]int64) {
	t.Helper()
	for deadline := time.Now().Add(clusterStageWaitMax); ; {
		got, short := groupOffsets(ctx, t, seeds, group, topic), ""
		for index, end := range ends {
			if got[index] < end {
				short = "short"
				if time.Now().After(deadline) {
					t.Fatalf("partition %d: committed %d, end %d", index, got[index], end)
				}
			}
		}
		if short == "" {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling what the members commit
	}
}

// TestClusterProcessesGroupSurvivesCoordinatorKill: three `cairn serve`
// processes; a franz-go consumer group of two members, each bootstrapped
// through another node, reads an RF 3 topic an idempotent acks=all
// producer writes, committing what it polled before each rebalance. The
// group's coordinator (the __consumer_offsets leader FindCoordinator
// names) is SIGKILLed and restarted. The committed offsets read before the
// kill are not lost or moved back under the new coordinator, every
// acknowledged record is consumed, a record is consumed twice only after
// the kill, and the committed offsets reach the partitions' ends. No node
// logs a refused group change before the kill.
func TestClusterProcessesGroupSurvivesCoordinatorKill(t *testing.T) {
	nodes := startCairnCluster(t)
	const topic, group = "group-orders", "group-orders-readers"
	cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", "3", "--replication-factor", "3")
	waitDescribed(t, nodes[1], topic)
	seeds := kafkaAddrs(nodes)

	ctx, cancel := context.WithTimeout(context.Background(), 6*clusterStageWaitMax)
	defer cancel()
	producer := newKgo(t, nodes[0].kafkaAddr, kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(250*time.Millisecond))
	acks := &clusterAcks{acks: map[string]clusterAck{}, pace: 2 * time.Millisecond}
	produceCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); acks.produceUntil(produceCtx, producer, topic) }()

	consumed := &groupConsumed{at: map[string][]time.Time{}}
	consumeCtx, stopConsuming := context.WithCancel(ctx)
	var members sync.WaitGroup
	for i := range 2 {
		member := newKgo(t, nodes[i].kafkaAddr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(250*time.Millisecond))
		members.Add(1)
		go func() { defer members.Done(); consumed.consume(consumeCtx, member) }()
	}
	defer func() { stopProducing(); <-produced; stopConsuming(); members.Wait() }()

	acks.waitAcked(t, clusterStageRecords)
	waitGroupConsumed(t, consumed, clusterStageRecords/2)
	admin := kadm.NewClient(newKgo(t, nodes[0].kafkaAddr, kgo.SeedBrokers(seeds...)))
	found := admin.FindGroupCoordinators(ctx, group)
	if err := found.Error(); err != nil {
		t.Fatalf("find the coordinator: %v", err)
	}
	coordinator := found[group].NodeID
	if lead := leaderOf(ctx, t, nodes, "__consumer_offsets", 0); lead != coordinator {
		t.Fatalf("FindCoordinator names node %d, node %d leads __consumer_offsets-0", coordinator, lead)
	}
	before := groupOffsets(ctx, t, seeds, group, topic)
	for i, n := range nodes {
		// Nodes not leading the offsets partition once logged this and
		// committed nothing.
		if strings.Contains(n.stderr.String(), "recording group change") {
			t.Fatalf("node %d refused a group change before the kill", i+1)
		}
	}
	killed := time.Now()
	nodes[coordinator-1].Kill()
	acks.waitAcked(t, acks.count()+clusterStageRecords)
	waitGroupConsumed(t, consumed, consumed.distinct()+clusterStageRecords)
	after := groupOffsets(ctx, t, seeds, group, topic)
	for index, at := range before {
		if after[index] < at {
			t.Fatalf("partition %d: committed %d before the kill, %d after", index, at, after[index])
		}
	}
	nodes[coordinator-1].Restart()
	acks.waitAcked(t, acks.count()+clusterStageRecords)
	stopProducing()
	<-produced

	acks.mu.Lock()
	acked := maps.Clone(acks.acks)
	acks.mu.Unlock()
	waitGroupAll(t, consumed, acked)
	waitCommitted(ctx, t, seeds, group, topic, ackedEnds(acked))
	stopConsuming()
	members.Wait()
	dups := 0
	for v, at := range consumed.at {
		if len(at) > 1 {
			dups++
			if at[1].Before(killed) {
				t.Fatalf("%q consumed %d times, again before the kill", v, len(at))
			}
		}
	}
	t.Logf("coordinator node %d SIGKILLed and restarted; %d records acknowledged and consumed, %d consumed again after the kill",
		coordinator, len(acked), dups)
}

func waitGroupConsumed(t *testing.T, c *groupConsumed, n int) {
	t.Helper()
	n = min(n, clusterRecordsMax)
	deadline := time.Now().Add(clusterStageWaitMax)
	for c.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records consumed after %s, want %d", c.distinct(), clusterStageWaitMax, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a counter the members raise
	}
}

// waitGroupAll waits until every acknowledged record was consumed.
func waitGroupAll(t *testing.T, c *groupConsumed, acked map[string]clusterAck) {
	t.Helper()
	deadline := time.Now().Add(clusterStageWaitMax)
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
