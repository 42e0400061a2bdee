package clusterlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cdc/postgres"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// timedLog notes, for each record it appends, when it became durable (and
// so readable by consumers on a single node).
type timedLog struct {
	*Log
	mu      sync.Mutex
	latency []time.Duration // durable time - commit time (the record's timestamp)
}

func (l *timedLog) Append(ctx context.Context, p cdc.PartitionID, recs []batch.Record) (func(context.Context) error, error) {
	wait, err := l.Log.Append(ctx, p, recs)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := wait(ctx); err != nil {
			return err
		}
		now := time.Now()
		l.mu.Lock()
		for _, r := range recs {
			if r.Value != nil && p.Topic == "lat.public.t" {
				l.latency = append(l.latency, now.Sub(time.UnixMilli(r.TimestampMs)))
			}
		}
		l.mu.Unlock()
		return nil
	}, nil
}

// BenchmarkCommitToReadable measures the time from a PostgreSQL commit to
// its event being durable in a node's partition (readable by consumers),
// for single-row transactions committed one every 2 ms. Commit times have
// millisecond resolution (the record timestamps).
// go test ./cdc/clusterlog -run '^$' -bench CommitToReadable -benchtime 1x
func BenchmarkCommitToReadable(b *testing.B) {
	const txns = 1000
	for range b.N {
		dsn := pg.CreateDatabase(b)
		ctx := context.Background()
		db, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
			b.Fatal(err)
		}
		e := env.Real()
		e.FS, e.Logger = vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := cluster.Open(e, cluster.DefaultConfig(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		log := &timedLog{Log: New(c)}
		cfg := postgres.Config{Name: "lat", DSN: dsn, Slot: "cairn_lat_" + dbName(dsn), SnapshotMode: postgres.SnapshotNever}
		conn, _ := postgres.New(cfg, log, env.RealClock(), e.Logger)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- conn.Run(rctx) }()
		for i := 0; i < 300 && conn.Status().State != "streaming"; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		b.ResetTimer()
		for i := 0; i < txns; i++ {
			if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO t VALUES (%d)`, i)); err != nil {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		for i := 0; ; i++ {
			log.mu.Lock()
			n := len(log.latency)
			log.mu.Unlock()
			if n >= txns {
				break
			}
			if i == 30000 {
				b.Fatalf("%d of %d events after 30 s", n, txns)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
		slices.Sort(log.latency)
		b.ReportMetric(float64(log.latency[len(log.latency)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(log.latency[len(log.latency)*99/100].Microseconds())/1000, "p99-ms")
		c.Close()
		db.Close(ctx)
	}
}
