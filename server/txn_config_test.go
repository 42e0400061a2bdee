package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestTransactionMaxTimeoutReachesTheCoordinator: a node started with a
// transaction max timeout of 2s refuses a producer asking for 5s
// (INVALID_TRANSACTION_TIMEOUT) and accepts one asking for 1s.
func TestTransactionMaxTimeoutReachesTheCoordinator(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", ""
	cfg.TransactionMaxTimeout = 2 * time.Second
	s, err := Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := func(timeout time.Duration) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.TransactionalID("t-"+timeout.String()),
			kgo.TransactionTimeout(timeout), kgo.DefaultProduceTopic("orders"), kgo.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			_ = cl.EndTransaction(ctx, kgo.TryAbort)
			return err
		}
		return cl.EndTransaction(ctx, kgo.TryCommit)
	}
	if err := begin(5 * time.Second); !errors.Is(err, kerr.InvalidTransactionTimeout) {
		t.Fatalf("a 5s transaction timeout: %v, want INVALID_TRANSACTION_TIMEOUT", err)
	}
	if err := begin(time.Second); err != nil {
		t.Fatalf("a 1s transaction timeout: %v", err)
	}
}
