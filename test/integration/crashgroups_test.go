package integration

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Shape of the crash test with a consumer group: cycles are short and
// bounded in records, so CI runs many of them.
const (
	crashGroupCyclesDefault = 20
	crashGroup              = "crash-group"
	crashGroupAttemptsMax   = 20000 // per producer per cycle
	crashGroupPause         = 100 * time.Microsecond
	crashGroupWriteMin      = 150 * time.Millisecond
	crashGroupWriteSpread   = 450 * time.Millisecond
	crashGroupCloseWait     = 3 * time.Second
)

// TestCrashWithConsumerGroup runs kill -9 cycles in which idempotent acks=all
// producers write while a consumer reads and commits its position for a
// group after every fetch.
// After each restart: every acknowledged record is present exactly once at
// its acknowledged offset (verifyCrashLog), and no committed offset is past
// its partition's log end — a consumer never commits a position a crash
// could take back, because it only ever sees durable records.
func TestCrashWithConsumerGroup(t *testing.T) {
	cycles := crashGroupCyclesDefault
	if text := os.Getenv("CAIRN_CRASH_GROUP_CYCLES"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > crashCyclesMax {
			t.Fatalf("CAIRN_CRASH_GROUP_CYCLES=%q: want a whole number from 1 to %d", text, crashCyclesMax)
		}
		cycles = n
	}
	// Long runs write more slowly per cycle, so the log (which every cycle
	// reads back whole) stays about as large as a default run's.
	pause := crashGroupPause * time.Duration(max(1, cycles/crashGroupCyclesDefault))
	seed := uint64(time.Now().UnixNano())
	random := rand.New(rand.NewPCG(seed, 7))
	server := startCairn(t, "")
	createTopic(t, server.kafkaAddr, crashTopic, crashPartitions, nil)
	history := &crashHistory{attempts: make(map[[2]uint16]uint32), acked: make(map[recordID]place)}
	commitsChecked := 0
	for cycle := range cycles {
		writeFor := crashGroupWriteMin + time.Duration(random.Int64N(int64(crashGroupWriteSpread)))
		runGroupCrashCycle(t, server, history, uint16(cycle), writeFor, pause)
		server.Restart()
		verified := verifyCrashLog(t, server.kafkaAddr, history)
		commitsChecked += requireCommitsWithinLog(t, server.kafkaAddr)
		if t.Failed() {
			t.Fatalf("cycle %d (seed %d) failed", cycle+1, seed)
		}
		if cycle == cycles-1 {
			t.Logf("crash test with a consumer group: %d cycles (seed %d); %d records acknowledged, %d verified in the log; %d committed offsets checked against the log end",
				cycles, seed, len(history.acked), verified, commitsChecked)
		}
	}
}

func runGroupCrashCycle(t *testing.T, server *cairnServer, history *crashHistory, cycle uint16, writeFor, pause time.Duration) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	options := []kgo.Opt{kgo.SeedBrokers(server.kafkaAddr), kgo.RetryTimeout(time.Second), kgo.RecordDeliveryTimeout(2 * time.Second)}
	var clients []*kgo.Client
	var workers sync.WaitGroup
	for producer := range uint16(2) {
		client, err := kgo.NewClient(append(options, kgo.DefaultProduceTopic(crashTopic), kgo.ProducerLinger(time.Millisecond))...)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, client)
		workers.Add(1)
		go func() {
			defer workers.Done()
			writeUntilDone(ctx, client, history, cycle, producer, crashGroupAttemptsMax, pause)
		}()
	}
	consumer, err := kgo.NewClient(append(options, kgo.ConsumeTopics(crashTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, consumer)
	workers.Add(1)
	go func() {
		defer workers.Done()
		consumeAndCommit(ctx, consumer, kadm.NewClient(consumer))
	}()
	time.Sleep(writeFor)
	server.Kill()
	stop()
	workers.Wait()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for _, client := range clients {
			client.Close()
		}
	}()
	select {
	case <-closed:
	case <-time.After(crashGroupCloseWait):
		// A client still retrying against the dead broker is abandoned; it
		// holds nothing the checks read.
	}
}

// consumeAndCommit reads the topic and, after every fetch, commits the
// position after the last record read in each partition for crashGroup, the
// way a consumer commits what it has processed.
func consumeAndCommit(ctx context.Context, consumer *kgo.Client, admin *kadm.Client) {
	for ctx.Err() == nil {
		fetches := consumer.PollFetches(ctx)
		offsets := make(kadm.Offsets)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				offsets.Add(kadm.Offset{Topic: p.Topic, Partition: p.Partition, At: p.Records[n-1].Offset + 1, LeaderEpoch: -1})
			}
		})
		if len(offsets) > 0 {
			_, _ = admin.CommitOffsets(ctx, crashGroup, offsets)
		}
	}
}

// requireCommitsWithinLog checks every committed offset of crashGroup
// against its partition's log end and returns how many it checked.
func requireCommitsWithinLog(t *testing.T, addr string) int {
	t.Helper()
	admin := newAdmin(t, addr)
	committed, err := admin.FetchOffsets(testContext(t), crashGroup)
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	ends := endOffsets(t, addr, crashTopic)
	checked := 0
	committed.Each(func(o kadm.OffsetResponse) {
		checked++
		if o.Err != nil {
			t.Errorf("committed offset of %s-%d: %v", o.Topic, o.Partition, o.Err)
			return
		}
		if end := ends[o.Partition]; o.At > end {
			t.Errorf("committed offset %d of %s-%d is past the log end %d", o.At, o.Topic, o.Partition, end)
		}
	})
	return checked
}
