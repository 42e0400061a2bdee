package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Shape of the crash test. Each cycle writes for a random time in
// [crashWriteMin, crashWriteMin+crashWriteSpread) and is killed at its end.
const (
	crashCyclesDefault  = 5
	crashCyclesMax      = 1000
	crashPartitions     = 3
	crashWriteMin       = 500 * time.Millisecond
	crashWriteSpread    = 1500 * time.Millisecond
	crashProducersMin   = 2
	crashProducersExtra = 2 // 2 or 3 producers per cycle
	crashTopic          = "crash"
	crashProblemsShown  = 20
	// crashAttemptsMax bounds one producer's records per cycle, and so the
	// test's memory, on a machine fast enough to reach it before the kill.
	crashAttemptsMax = 1_000_000
)

// recordID names one produce attempt. Its text form is the record value, so
// every record found in the log traces back to the attempt that sent it.
type recordID struct {
	cycle    uint16
	producer uint16
	sequence uint32
}

func (id recordID) value() []byte {
	return fmt.Appendf(nil, "cycle=%d producer=%d sequence=%d", id.cycle, id.producer, id.sequence)
}

// parseRecordID reverses value; ok is false for anything value never makes.
func parseRecordID(value []byte) (id recordID, ok bool) {
	_, err := fmt.Sscanf(string(value), "cycle=%d producer=%d sequence=%d", &id.cycle, &id.producer, &id.sequence)
	return id, err == nil && string(id.value()) == string(value)
}

type place struct {
	partition int32
	offset    int64
}

// crashHistory is what every cycle's producers did. Producers number their
// attempts from 0, so an attempt was sent exactly when its sequence is below
// the producer's count; acknowledged records are kept with their place.
type crashHistory struct {
	mu       sync.Mutex
	attempts map[[2]uint16]uint32 // (cycle, producer) → attempts made
	acked    map[recordID]place
}

func (h *crashHistory) sent(id recordID) bool {
	return id.sequence < h.attempts[[2]uint16{id.cycle, id.producer}]
}

// TestCrashKeepsAcknowledgedRecords proves the durability contract against
// SIGKILL: idempotent acks=all producers write unique values while the
// server is killed at a random moment, and after each restart every
// partition, read from its log start to its high watermark, holds every
// acknowledged record exactly once at the offset it was acknowledged at, at
// contiguous offsets, with nothing that was never sent and no value twice.
// The cycles share one data dir, so each recovery starts from the previous
// crash's files.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	cycles := crashCycles(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("crash test: %d cycles, seed %d", cycles, seed)
	random := rand.New(rand.NewPCG(seed, seed>>32))
	server := startCairn(t, "")
	createTopic(t, server.kafkaAddr, crashTopic, crashPartitions, nil)

	history := &crashHistory{attempts: make(map[[2]uint16]uint32), acked: make(map[recordID]place)}
	for cycle := range cycles {
		producers := crashProducersMin + random.IntN(crashProducersExtra)
		writeFor := crashWriteMin + time.Duration(random.Int64N(int64(crashWriteSpread)))
		history.mu.Lock()
		ackedBefore := len(history.acked)
		history.mu.Unlock()
		runCrashCycle(t, server, history, uint16(cycle), producers, writeFor)
		server.Restart()
		verified := verifyCrashLog(t, server.kafkaAddr, history)
		t.Logf("cycle %d: %d producers wrote for %s, then SIGKILL; acknowledged %d (all cycles %d); verified %d records in the log",
			cycle+1, producers, writeFor.Round(time.Millisecond), len(history.acked)-ackedBefore, len(history.acked), verified)
		if t.Failed() {
			return
		}
	}
	t.Logf("crash test done: %d cycles, %d records acknowledged and verified", cycles, len(history.acked))
}

func crashCycles(t *testing.T) int {
	text := os.Getenv("CAIRN_CRASH_CYCLES")
	if text == "" {
		return crashCyclesDefault
	}
	cycles, err := strconv.Atoi(text)
	if err != nil || cycles < 1 || cycles > crashCyclesMax {
		t.Fatalf("CAIRN_CRASH_CYCLES=%q: want a whole number from 1 to %d", text, crashCyclesMax)
	}
	return cycles
}

// runCrashCycle runs producers against the server for writeFor, kills the
// server with SIGKILL while they are writing, then stops the producers.
func runCrashCycle(t *testing.T, server *cairnServer, history *crashHistory, cycle uint16, producers int, writeFor time.Duration) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var clients []*kgo.Client
	var writers sync.WaitGroup
	for producer := range uint16(producers) {
		client, err := kgo.NewClient(
			kgo.SeedBrokers(server.kafkaAddr),
			kgo.DefaultProduceTopic(crashTopic),
			kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are on by default
			kgo.ProducerLinger(time.Millisecond),
			kgo.MaxBufferedRecords(2000),
			kgo.RecordDeliveryTimeout(5*time.Second),
		)
		if err != nil {
			t.Fatalf("cycle %d: create producer %d: %v", cycle, producer, err)
		}
		clients = append(clients, client)
		writers.Add(1)
		go func() {
			defer writers.Done()
			writeUntilDone(ctx, client, history, cycle, producer, crashAttemptsMax, 0)
		}()
	}
	time.Sleep(writeFor)
	server.Kill()
	stop()
	writers.Wait()
	for _, client := range clients {
		// Close fails whatever is still buffered or in flight; those records
		// were sent (they may be in the log) but are not acknowledged.
		client.Close()
	}
}

// writeUntilDone produces records with sequence 0, 1, 2, ... until ctx is
// done or attemptsMax is reached, counting each attempt before it is made,
// pausing between attempts when pause is positive.
func writeUntilDone(ctx context.Context, client *kgo.Client, history *crashHistory, cycle, producer uint16, attemptsMax uint32, pause time.Duration) {
	key := [2]uint16{cycle, producer}
	for sequence := uint32(0); ctx.Err() == nil && sequence < attemptsMax; sequence++ {
		id := recordID{cycle: cycle, producer: producer, sequence: sequence}
		history.mu.Lock()
		history.attempts[key] = sequence + 1
		history.mu.Unlock()
		record := &kgo.Record{Key: fmt.Appendf(nil, "p%d-%d", producer, sequence%64), Value: id.value()}
		client.Produce(ctx, record, func(record *kgo.Record, err error) {
			if err != nil {
				return
			}
			history.mu.Lock()
			history.acked[id] = place{record.Partition, record.Offset}
			history.mu.Unlock()
		})
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// verifyCrashLog reads every partition and checks the durability contract;
// it returns how many records it read.
func verifyCrashLog(t *testing.T, addr string, history *crashHistory) int {
	t.Helper()
	// The producers are closed, but a late promise must not race the check.
	history.mu.Lock()
	defer history.mu.Unlock()
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	found := make(map[recordID]place, len(history.acked))
	next := make(map[int32]int64) // nothing deletes records here, so every log starts at 0
	read := 0
	readEach(t, addr, crashTopic, nil, func(record *kgo.Record) {
		read++
		at := place{record.Partition, record.Offset}
		if record.Offset != next[record.Partition] {
			problem("partition %d: offset %d where %d was expected; offsets must be contiguous from 0",
				at.partition, at.offset, next[record.Partition])
		}
		next[record.Partition] = record.Offset + 1
		id, ok := parseRecordID(record.Value)
		if !ok || !history.sent(id) {
			problem("%d@%d holds %q, which no producer sent", at.partition, at.offset, record.Value)
			return
		}
		if earlier, twice := found[id]; twice {
			problem("%q is at %d@%d and again at %d@%d", record.Value, earlier.partition, earlier.offset, at.partition, at.offset)
		}
		found[id] = at
	})
	for id, want := range history.acked {
		got, present := found[id]
		if !present {
			problem("acknowledged %q at %d@%d is missing", id.value(), want.partition, want.offset)
		} else if got != want {
			problem("acknowledged %q at %d@%d is at %d@%d", id.value(), want.partition, want.offset, got.partition, got.offset)
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems in %d records read (%d acknowledged); the first ones:\n%s",
			len(problems), read, len(history.acked), strings.Join(problems[:min(crashProblemsShown, len(problems))], "\n"))
	}
	return read
}
