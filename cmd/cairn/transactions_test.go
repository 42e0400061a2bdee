package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionsCommands: against Cairn, list and describe show an open
// transaction of a franz-go producer, and abort ends the transaction left
// open on a partition: the partition's last stable offset moves on.
func TestTransactionsCommands(t *testing.T) {
	s := startCairn(t)
	brokers := s.KafkaAddr()
	if _, err := s.Cluster().CreateTopic("orders", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.TransactionalID("billing"), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	list := mustCairn(t, "transactions", "list", "--brokers", brokers).stdout
	if !strings.HasPrefix(list, "billing\t") || !strings.Contains(list, "\tOngoing\t") {
		t.Errorf("list printed %q", list)
	}
	described := mustCairn(t, "transactions", "describe", "billing", "--brokers", brokers).stdout
	for _, want := range []string{"transactional id: billing", "state:            Ongoing", "partitions:       orders-0"} {
		if !strings.Contains(described, want) {
			t.Errorf("describe lacks %q:\n%s", want, described)
		}
	}
	if r := cairn(t, "transactions", "abort", "--topic", "orders", "--partition", "0", "--start-offset", "7", "--brokers", brokers); r.err == nil {
		t.Errorf("abort of a transaction at no such offset succeeded: %q", r.stdout)
	}
	aborted := mustCairn(t, "transactions", "abort", "--topic", "orders", "--partition", "0", "--start-offset", "0", "--brokers", brokers).stdout
	if !strings.HasPrefix(aborted, "aborted the transaction of producer ") {
		t.Errorf("abort printed %q", aborted)
	}
	p, err := s.Cluster().Partition("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if lso, hwm := p.LastStableOffset(), p.HighWatermark(); lso != hwm || hwm != 2 {
		t.Fatalf("after the abort: LSO %d, HWM %d; want 2 and 2 (%s)", lso, hwm, fmt.Sprint(p.AbortedTransactions(0, 2)))
	}
}
