package clusterlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/cdc/postgres"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// BenchmarkConnectorIntoPartitions measures the connector into a node's
// partitions on the real filesystem (every append synced before the
// position is confirmed): single-row transactions committed beforehand,
// then streamed.
// go test ./cdc/clusterlog -run '^$' -bench . -benchtime 1x
func BenchmarkConnectorIntoPartitions(b *testing.B) {
	const txns = 20000
	for range b.N {
		dsn := pg.CreateDatabase(b)
		ctx := context.Background()
		db, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
			b.Fatal(err)
		}
		e := env.Real()
		e.FS, e.Logger = vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := cluster.Open(e, cluster.DefaultConfig(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		cfg := postgres.Config{Name: "bench", DSN: dsn, Slot: "cairn_bench_" + dbName(dsn), SnapshotMode: postgres.SnapshotNever}
		conn, _ := postgres.New(cfg, New(c), env.RealClock(), e.Logger)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- conn.Run(rctx) }()
		for i := 0; i < 300 && conn.Status().State != "streaming"; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		<-done
		for i := 0; i < txns; i++ {
			if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO t VALUES (%d, 'x')`, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		began := time.Now()
		conn, _ = postgres.New(cfg, New(c), env.RealClock(), e.Logger)
		rctx, cancel = context.WithCancel(ctx)
		go func() { done <- conn.Run(rctx) }()
		for i := 0; conn.Status().Events < txns; i++ {
			if i == 60000 {
				b.Fatalf("%d events after 60 s", conn.Status().Events)
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(began)
		b.StopTimer()
		cancel()
		<-done
		b.ReportMetric(txns/took.Seconds(), "txns/s")
		c.Close()
		db.Close(ctx)
	}
}
