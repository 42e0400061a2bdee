package integration

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	nemesisSeed     = flag.Uint64("nemesis.seed", 0, "seed of TestClusterNemesis's fault schedule (0: drawn from the clock and printed)")
	nemesisDuration = flag.Duration("nemesis.duration", 30*time.Second, "how long TestClusterNemesis injects faults")
	nemesisNodes    = flag.Int("nemesis.nodes", 3, "`cairn serve` processes of TestClusterNemesis: 3 or 5")
)

// Workload bounds of the nemesis: the producers' pace, the records
// acknowledged and the appends per writer after the final heal.
const (
	nemesisProducers     = 2
	nemesisProducePace   = 4 * time.Millisecond // per producer
	nemesisAppendPace    = 5 * time.Millisecond // per writer
	nemesisHealedRecords = 300
	nemesisHealedAppends = 10
)

// TestClusterNemesis: `cairn serve` processes (3, or 5 with
// -nemesis.nodes) on the lossy filesystem, with a fault proxy on every
// link between two nodes, run a seeded random schedule of faults
// (-nemesis.seed replays one) for -nemesis.duration: SIGKILL (losing
// what the node had not synced) and restart, SIGSTOP past the election
// timeout and SIGCONT, on a node's links blackholes (both ways or one),
// delay with jitter, resets and random drops, one link cut, a ring and a
// bridge; always leaving a running node linked to a majority
// (planNemesis). Meanwhile idempotent acks=all franz-go
// producers write unique values to an RF 3 topic of three partitions, a
// consumer group of two commits what it polled, and one writer per node
// appends to its stream at exact expected revisions. After a final heal
// every workload must progress again; then every acknowledged record is
// held once at its acknowledged offset in every replica's data directory
// (none lost, none duplicated, no offset holding two records), and read
// back so through a consumer; the group consumed every acknowledged record
// and its committed offsets, sampled throughout, never moved back and
// reach the ends; every acknowledged append is read back at its revision
// through every node. Besides, a client per node commits and fetches a
// memberless group's offset and another appends to and reads one stream
// (nemesis_linear_test.go); both histories must be linearizable. The
// run's figures are printed.
func TestClusterNemesis(t *testing.T) {
	count, duration := *nemesisNodes, *nemesisDuration
	if count != 3 && count != 5 {
		t.Fatalf("-nemesis.nodes %d: 3 or 5", count)
	}
	seed := *nemesisSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	faults := planNemesis(seed, count, duration)
	t.Logf("nemesis seed %d, %d nodes, %s of faults (replay: -nemesis.seed %d -nemesis.nodes %d -nemesis.duration %s)",
		seed, count, duration, seed, count, duration)
	runNemesis(t, count, seed, duration, faults)
}

// runNemesis runs the workloads and checks of TestClusterNemesis through
// faults, a schedule lasting duration, on count nodes whose proxies draw
// from seed.
func runNemesis(t *testing.T, count int, seed uint64, duration time.Duration, faults []nemesisFault) {
	t.Helper()
	c := startNemesisCluster(t, count, seed)
	nodes, seeds := c.nodes, kafkaAddrs(c.nodes)
	const topic, group, ledger = "nemesis-orders", "nemesis-readers", "nemesis-ledger"
	cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", fmt.Sprint(clusterPartitions), "--replication-factor", "3")
	cairnOK(t, nodes[0], "", "topic", "create", ledger, "--replication-factor", "3", "--config", "cleanup.policy=stream")
	ctx, cancel := context.WithTimeout(context.Background(), duration+10*clusterStageWaitMax)
	defer cancel()
	replicas := waitReplicas(ctx, t, nodes, topic, clusterPartitions)
	waitReplicas(ctx, t, nodes, ledger, 1)

	w := startNemesisWorkloads(ctx, t, nodes, topic, group, ledger, duration)
	defer w.stop()
	linear := startLinearWorkloads(ctx, t, nodes, seed, topic, "nemesis-simple", ledger, "linear")
	defer linear.stop()
	w.waitProgress(t, nemesisHealedRecords, nemesisHealedAppends)

	began := time.Now()
	c.run(ctx, t, faults)
	c.heal(t)
	healed := time.Now()
	w.waitProgress(t, nemesisHealedRecords, nemesisHealedAppends)
	ended := time.Now()
	w.stopProducing()
	linear.stop()

	acked := w.acknowledged(t)
	ends := ackedEnds(acked)
	waitGroupAll(t, w.consumed, acked)
	waitCommitted(ctx, t, seeds, group, topic, ends)
	w.stopConsuming()
	w.stopWriting()
	for _, ew := range w.writers {
		if ew.fatal != nil {
			t.Fatal(ew.fatal)
		}
	}
	checkESWriters(ctx, t, nodes, ledger, w.writers)
	consumeThrough(ctx, t, nodes[0], topic, ends, acked)
	peaks := c.peakRSS()
	held := checkReplicas(t, nodes, topic, replicas, ends, acked)

	kinds := map[string]int{}
	for _, f := range faults {
		kinds[f.kind.String()]++
	}
	t.Logf("nemesis seed %d, %d nodes, %s: %d faults %v", seed, count, duration, len(faults), kinds)
	w.report(t, c, nemesisTimes{began: began, healed: healed, ended: ended}, acked, held, replicas)
	t.Logf("peak resident memory of each node since its last start (lossy filesystem: unsynced data in memory): %s", peaks)
	if held.lost+held.duplicates+held.conflicts > 0 {
		t.Errorf("replicas disagree with the acknowledgements:\n%s", strings.Join(held.examples, "\n"))
	}
	if back := w.watch.movedBack(); len(back) > 0 {
		t.Errorf("committed offsets moved back:\n%s", strings.Join(back, "\n"))
	}
	// No fault here damages a file: a replica found damaged is a crash's
	// torn write taken for damage (and renewed for nothing).
	for k, n := range nodes {
		if d := n.stderr.count(damagedReplicaLine); d > 0 {
			t.Errorf("node %d logged %d times that its replica was damaged, though no fault damages files", k+1, d)
		}
	}
	linear.check(t, seed)
}

// nemesisTimes are the moments of a run: the first fault, the final heal,
// and the last acknowledgement waited for.
type nemesisTimes struct{ began, healed, ended time.Time }

// acknowledged is every record the producers had acknowledged; a failed
// produce fails the test, as a majority was always up.
func (w *nemesisWorkloads) acknowledged(t *testing.T) map[string]clusterAck {
	t.Helper()
	acked := map[string]clusterAck{}
	for _, p := range w.producers {
		p.mu.Lock()
		if len(p.failed) > 0 {
			t.Errorf("%d produces failed, first: %v", len(p.failed), p.failed[0])
		}
		maps.Copy(acked, p.acks)
		p.mu.Unlock()
	}
	return acked
}

// report prints the run's figures: what was acknowledged and verified,
// the longest gap between acknowledgements on a partition and of the
// event store (with the faults on meanwhile), and the recovery after the
// heal.
func (w *nemesisWorkloads) report(t *testing.T, c *nemesisCluster, times nemesisTimes, acked map[string]clusterAck, held *heldCount, replicas map[int32][]int32) {
	t.Helper()
	ackedAt := map[int32][]time.Time{} // by partition, from the first fault on
	for _, a := range acked {
		if !a.at.Before(times.began) {
			ackedAt[a.partition] = append(ackedAt[a.partition], a.at)
		}
	}
	var gap ackGap // the longest of a partition
	var gapPartition int32
	for index, at := range ackedAt {
		if g := longestGap(at, times.ended); g.length > gap.length {
			gap, gapPartition = g, index
		}
	}
	var recovered time.Duration // from the heal to the last partition's or writer's first acknowledgement
	for _, p := range w.producers {
		for index := range int32(clusterPartitions) {
			recovered = max(recovered, p.firstAfter(index, times.healed).Sub(times.healed))
		}
	}
	appended, appendedAt := 0, []time.Time(nil)
	for _, ew := range w.writers {
		appended += len(ew.ids)
		for _, at := range ew.at {
			if !at.Before(times.began) {
				appendedAt = append(appendedAt, at)
			}
		}
		if i, _ := slices.BinarySearchFunc(ew.at, times.healed, time.Time.Compare); i < len(ew.at) {
			recovered = max(recovered, ew.at[i].Sub(times.healed))
		}
	}
	esGap := longestGap(appendedAt, times.ended)
	again := 0
	for _, at := range w.consumed.at {
		if len(at) > 1 {
			again++
		}
	}
	t.Logf("kafka: %d records acknowledged, %d verified on every replica, %d lost, %d duplicates, %d offsets with two records; longest gap between two acknowledgements on a partition %s (partition %d, replicas %v, faults then: %s)",
		len(acked), held.verified, held.lost, held.duplicates, held.conflicts, gap.length.Round(time.Millisecond),
		gapPartition, replicas[gapPartition], c.during(gap))
	t.Logf("group: %d records consumed, %d of them more than once; %d samples of the committed offsets, %d moved back",
		len(w.consumed.at), again, w.watch.sampled(), len(w.watch.movedBack()))
	t.Logf("event store: %d appends acknowledged at their expected revisions, each read back through every node; longest gap between two acknowledgements (any writer) %s (faults then: %s)",
		appended, esGap.length.Round(time.Millisecond), c.during(esGap))
	t.Logf("after the final heal every partition and every writer had an acknowledgement within %s", recovered.Round(time.Millisecond))
}

// nemesisWorkloads are the clients running through the faults.
type nemesisWorkloads struct {
	producers []*clusterAcks
	consumed  *groupConsumed
	watch     *offsetsWatch
	writers   []*esWriter

	stopProducing, stopConsuming, stopWriting func() // each waits for its goroutines
	stop                                      func() // all of them
}

// startNemesisWorkloads starts the producers, the group's members and the
// offsets watch, and one event-store writer through each node.
func startNemesisWorkloads(ctx context.Context, t *testing.T, nodes []*cairnServer, topic, group, ledger string, duration time.Duration) *nemesisWorkloads {
	t.Helper()
	seeds := kafkaAddrs(nodes)
	fast := kgo.MetadataMinAge(250 * time.Millisecond)
	w := &nemesisWorkloads{consumed: &groupConsumed{at: map[string][]time.Time{}}, watch: &offsetsWatch{high: map[int32]int64{}}}
	limit := int((duration + 10*clusterStageWaitMax) / nemesisProducePace)

	produceCtx, stopProducing := context.WithCancel(ctx)
	var producing sync.WaitGroup
	for i := range nemesisProducers {
		acks := &clusterAcks{acks: map[string]clusterAck{}, pace: nemesisProducePace, prefix: fmt.Sprintf("p%d", i+1), limit: limit}
		w.producers = append(w.producers, acks)
		// AlwaysRetryEOF: franz-go fails a produce, without retrying, whose
		// fresh connection reads EOF first (its guess: SASL missing). A
		// node SIGKILLed just after the request was sent does exactly that
		// (seed 1796592231985597695 at five nodes: 64 records of one
		// producer failed at once), and a majority was up all along.
		producer := newKgo(t, nodes[i%len(nodes)].kafkaAddr, kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), fast, kgo.AlwaysRetryEOF())
		producing.Add(1)
		go func() { defer producing.Done(); acks.produceUntil(produceCtx, producer, topic) }()
	}
	w.stopProducing = func() { stopProducing(); producing.Wait() }

	consumeCtx, stopConsuming := context.WithCancel(ctx)
	var consuming sync.WaitGroup
	for i := range 2 {
		member := newKgo(t, nodes[i].kafkaAddr, kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), fast)
		consuming.Add(1)
		go func() { defer consuming.Done(); w.consumed.consume(consumeCtx, member) }()
	}
	consuming.Add(1)
	go func() { defer consuming.Done(); w.watch.run(consumeCtx, seeds, group, topic) }()
	w.stopConsuming = func() { stopConsuming(); consuming.Wait() }

	writeCtx, stopWriting := context.WithCancel(ctx)
	var writing sync.WaitGroup
	for i, n := range nodes {
		ew := &esWriter{stream: fmt.Sprintf("account-%d", i+1), node: n, pace: nemesisAppendPace, limit: int((duration + 10*clusterStageWaitMax) / nemesisAppendPace)}
		w.writers = append(w.writers, ew)
		writing.Add(1)
		go func() { defer writing.Done(); ew.run(writeCtx, ledger) }()
	}
	w.stopWriting = func() { stopWriting(); writing.Wait() }
	w.stop = func() { w.stopProducing(); w.stopConsuming(); w.stopWriting() }
	return w
}

// waitProgress waits until each producer has records more records
// acknowledged, the group consumed them, and each writer appends more.
func (w *nemesisWorkloads) waitProgress(t *testing.T, records, appends int) {
	t.Helper()
	for _, p := range w.producers {
		p.waitAcked(t, p.count()+records)
	}
	waitGroupConsumed(t, w.consumed, w.consumed.distinct()+records)
	waitESWriters(t, w.writers, appends)
}

// checkReplicas waits until every replica applied the acknowledged
// records, stops the nodes and counts what each replica's data directory
// holds of them.
func checkReplicas(t *testing.T, nodes []*cairnServer, topic string, replicas map[int32][]int32, ends map[int32]int64, acked map[string]clusterAck) *heldCount {
	t.Helper()
	mine := make([]map[int32]int64, len(nodes)) // the ends of each node's replicas
	for index, ids := range replicas {
		for _, id := range ids {
			if mine[id-1] == nil {
				mine[id-1] = map[int32]int64{}
			}
			mine[id-1][index] = ends[index]
		}
	}
	for i, n := range nodes {
		if mine[i] != nil {
			waitApplied(t, n, topic, mine[i])
		}
	}
	for _, n := range nodes {
		n.Stop()
	}
	copies := map[int32]map[int32]map[int64]string{} // partition → node → offset → value
	for i, n := range nodes {
		if mine[i] == nil {
			continue
		}
		for index, records := range readDataDir(t, n.dataDir, topic, mine[i]) {
			if copies[index] == nil {
				copies[index] = map[int32]map[int64]string{}
			}
			copies[index][int32(i+1)] = records
		}
	}
	held := &heldCount{}
	for _, index := range slices.Sorted(maps.Keys(copies)) {
		held.countHeld(index, copies[index], acked)
	}
	return held
}
