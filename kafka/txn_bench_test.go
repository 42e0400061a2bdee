package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkTxnProduce compares producing 1 KiB records in transactions of
// 100 and of 10,000 records with non-transactional acks=all (idempotent)
// produce, on one partition of a single node; b.N counts records. Report
// the ratio of the MB/s figures.
func BenchmarkTxnProduce(b *testing.B) {
	value := make([]byte, 1024)
	for _, c := range []struct {
		name string
		txn  int // records per transaction; 0: not transactional
	}{{"acks-all", 0}, {"txn-100", 100}, {"txn-10000", 10_000}} {
		b.Run(c.name, func(b *testing.B) {
			ts := startServer(b)
			topic := "bench-" + c.name
			if _, err := ts.cluster.CreateTopic(topic, 1, nil, false); err != nil {
				b.Fatal(err)
			}
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond)}
			if c.txn > 0 {
				opts = append(opts, kgo.TransactionalID("bench-"+c.name))
			}
			cl := ts.client(b, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := b.N - done
				if c.txn > 0 {
					n = min(n, c.txn)
					if err := cl.BeginTransaction(); err != nil {
						b.Fatal(err)
					}
				}
				for range n {
					cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
						if err != nil {
							panic(fmt.Sprintf("produce: %v", err))
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				if c.txn > 0 {
					if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
						b.Fatal(err)
					}
				}
				done += n
			}
		})
	}
}
