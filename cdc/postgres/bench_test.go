package postgres

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkStream measures the connector from PostgreSQL's commit to the
// events in an in-memory log (decoding, rendering, planning): rows are
// inserted first with the connector stopped, then it streams them all.
// go test ./cdc/postgres -run '^$' -bench Stream -benchtime 1x
func BenchmarkStream(b *testing.B) {
	for _, shape := range []struct {
		name       string
		txns, rows int
	}{{"single-row-txns", 5000, 1}, {"1000-row-txns", 20, 1000}} {
		b.Run(shape.name, func(b *testing.B) {
			for range b.N {
				dsn := pg.CreateDatabase(b)
				db := connect(b, dsn)
				exec(b, db, `CREATE TABLE bench (id int PRIMARY KEY, a text, n numeric, ts timestamptz)`)
				log := newMemLog()
				cfg := Config{Name: "bench", DSN: dsn, SnapshotMode: SnapshotNever}
				r := start(b, cfg, log)
				r.waitStreaming(b)
				if err := r.stop(b); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < shape.txns; i++ {
					exec(b, db, fmt.Sprintf(`INSERT INTO bench SELECT g, 'row ' || g, g * 1.5, now() FROM generate_series(%d, %d) g`, i*shape.rows, (i+1)*shape.rows-1))
				}
				b.ResetTimer()
				began := time.Now()
				r = start(b, cfg, log)
				log.waitRecords(b, "bench.public.bench", shape.txns*shape.rows, r.errs)
				took := time.Since(began)
				b.StopTimer()
				b.ReportMetric(float64(shape.txns*shape.rows)/took.Seconds(), "changes/s")
			}
		})
	}
}
