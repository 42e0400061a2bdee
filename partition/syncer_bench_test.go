package partition

// The sync path alone on the real disk, for many partitions: each round
// appends one batch of ten 1 KiB records to every partition, as a produce
// request spread over all of them does, and waits until every one is
// durable (acks=all). Partitions syncing on their own flushers against
// the same partitions sharing a Syncer; one partition is the reference the
// ratio is taken to. bench/results/2026-12-06-sharedsync.md has figures.
//
//	go test -run '^$' -bench SharedSync -benchtime 20x ./partition/

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

func BenchmarkSharedSync(b *testing.B) {
	for _, partitions := range benchSyncPartitions {
		for _, workers := range benchSyncWorkers {
			name := fmt.Sprintf("partitions=%d/syncer=%d", partitions, workers)
			if workers == 0 {
				name = fmt.Sprintf("partitions=%d/syncer=none", partitions)
			}
			b.Run(name, func(b *testing.B) { benchSharedSync(b, partitions, workers) })
		}
	}
}

func benchSharedSync(b *testing.B, partitions, workers int) {
	var syncer *Syncer
	if workers > 0 {
		var err error
		if syncer, err = NewSyncer(env.Real().Clock, workers); err != nil {
			b.Fatal(err)
		}
		defer syncer.Close()
	}
	dir := b.TempDir()
	cfg := DefaultConfig()
	cfg.Syncer = syncer
	ps := make([]*Partition, partitions)
	for i := range ps {
		p, err := Open(testEnv(vfs.Default()), filepath.Join(dir, fmt.Sprintf("t-%d", i)), "t", int32(i), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		ps[i] = p
	}
	recs := make([]batch.Record, 10)
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), Value: make([]byte, benchRecordValueBytes)}
	}
	template := batch.Build(recs, batch.None)
	ctx, cancel := context.WithTimeout(context.Background(), benchWaitTimeout)
	defer cancel()
	last := make([]int64, partitions)
	b.SetBytes(int64(len(template) * partitions))
	b.ResetTimer()
	for range b.N {
		for i, p := range ps {
			res, err := p.Append(append([]byte(nil), template...))
			if err != nil {
				b.Fatal(err)
			}
			last[i] = res.LastOffset
		}
		for i, p := range ps {
			if err := p.WaitDurable(ctx, last[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// The shapes BenchmarkSharedSync runs; workers 0 is no Syncer.
var (
	benchSyncPartitions = []int{1, 100, 1000}
	benchSyncWorkers    = []int{0, 16, 64, 256}
)
