package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/storage/vfs"
)

// Bounds of the consume-transform-produce restart test.
const (
	ctpInputs   = 300
	ctpRestarts = 3
	ctpWaitMax  = 60 * time.Second
	ctpPace     = 10 * time.Millisecond // between transactions, so restarts land mid-run
)

// TestTransactSessionAcrossRestarts: franz-go's GroupTransactSession
// consumes an input topic and writes one output per input record, in
// transactions that also commit the group's offsets. The single node is
// closed and started again from its data directory three times while it
// runs. In the end a read_committed consumer of the output sees exactly
// one record per input: none lost, none twice (an attempt cut by a
// restart is aborted, its outputs dropped by read_committed, and its
// inputs consumed again from the committed offsets).
func TestTransactSessionAcrossRestarts(t *testing.T) {
	fsys := vfs.NewMem()
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(cfg, fsys, logger)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KafkaAddr = s.KafkaAddr() // restarts bind the same address
	defer func() { _ = s.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), ctpWaitMax)
	defer cancel()

	src, err := kgo.NewClient(kgo.SeedBrokers(cfg.KafkaAddr), kgo.DefaultProduceTopic("ctp-in"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for i := range ctpInputs {
		if err := src.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%03d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	src.Close()
	if _, err := s.Cluster().CreateTopic("ctp-out", 1, nil, false); err != nil {
		t.Fatal(err)
	}

	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(cfg.KafkaAddr), kgo.TransactionalID("ctp"),
		kgo.ConsumerGroup("ctp-group"), kgo.ConsumeTopics("ctp-in"), kgo.DefaultProduceTopic("ctp-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(300)) // small fetches: many transactions
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		for runCtx.Err() == nil {
			fs := sess.PollFetches(runCtx)
			if err := sess.Begin(); err != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				sess.Produce(runCtx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
			})
			_, _ = sess.End(runCtx, kgo.TryCommit) // a failed attempt aborts; its inputs come again
			time.Sleep(ctpPace)
		}
	}()
	defer func() { stopRun(); <-ran }()

	for i := range ctpRestarts {
		// Restart once the output has grown by a share of the run: mid-run.
		want := int64(i+1) * ctpInputs / (ctpRestarts + 1)
		for end := int64(0); end < want; end = outputEnd(t, s) {
			if ctx.Err() != nil {
				t.Fatalf("output log end %d before restart %d, want %d", end, i+1, want)
			}
			time.Sleep(10 * time.Millisecond) // polling the log end: no event to wait on
		}
		t.Logf("restart %d at output log end %d", i+1, outputEnd(t, s))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = restartOn(t, cfg, fsys, logger)
	}

	counts := map[string]int{}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(cfg.KafkaAddr), kgo.ConsumeTopics("ctp-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for len(counts) < ctpInputs && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { counts[string(r.Value)]++ })
	}
	if len(counts) != ctpInputs {
		t.Fatalf("%d distinct outputs committed, want %d", len(counts), ctpInputs)
	}
	// Anything the session commits after this is a duplicate too.
	stopRun()
	<-ran
	drain, drained := context.WithTimeout(ctx, time.Second)
	defer drained()
	for drain.Err() == nil {
		consumer.PollFetches(drain).EachRecord(func(r *kgo.Record) { counts[string(r.Value)]++ })
	}
	for v, n := range counts {
		if n != 1 {
			t.Errorf("%s committed %d times", v, n)
		}
	}
}

// outputEnd is the log end of the output partition.
func outputEnd(t *testing.T, s *Server) int64 {
	t.Helper()
	p, err := s.Cluster().Partition("ctp-out", 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.LogEndOffset()
}

// restartOn starts the node again on its data and address, retrying a
// bind a client's socket still holds.
func restartOn(t *testing.T, cfg Config, fsys vfs.FS, logger *slog.Logger) *Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := Start(cfg, fsys, logger)
		if err == nil {
			return s
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 40 {
			t.Fatalf("restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the port's holder is outside the test's reach
	}
}
