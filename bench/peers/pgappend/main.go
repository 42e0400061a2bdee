// Command pgappend measures the usual PostgreSQL shape of an event store as
// the baseline for Cairn's event-store workloads: a table with a unique
// (stream, version) key, one INSERT per append in its own transaction
// (synchronous_commit=on), 32 writers each on its own stream; and reading a
// 1,000-event stream from a table holding many other events. It prints JSON
// summaries with the field names of `cairn bench append|read-stream --json`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

type latency struct {
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

type summary struct {
	Workload            string   `json:"workload"`
	Writers             int      `json:"writers,omitempty"`
	Operations          int64    `json:"operations"`
	Records             int64    `json:"records"`
	ElapsedSeconds      float64  `json:"elapsed_seconds"`
	OperationsPerSecond float64  `json:"operations_per_second"`
	RecordsPerSecond    float64  `json:"records_per_second"`
	Latency             *latency `json:"latency,omitempty"`
}

const schema = `
DROP TABLE IF EXISTS events;
CREATE TABLE events (stream text NOT NULL, version bigint NOT NULL, id uuid NOT NULL, type text NOT NULL, data bytea NOT NULL, PRIMARY KEY (stream, version))`

func main() {
	dsn := flag.String("dsn", "", "PostgreSQL connection string")
	mode := flag.String("mode", "append", "append or read-stream")
	writers := flag.Int("writers", 32, "concurrent writers, each on its own stream (append)")
	eventBytes := flag.Int("event-bytes", 100, "size of each event's data")
	duration := flag.Duration("duration", 15*time.Second, "how long the measured part runs")
	events := flag.Int("events", 1000, "events of the stream read (read-stream)")
	others := flag.Int("other-events", 1_000_000, "other events in the table (read-stream)")
	operations := flag.Int64("operations", 100_000_000, "most appends (all writers together) or whole-stream reads")
	flag.Parse()
	// Loading a million rows comes before the measured part; the deadline
	// leaves room for it and still ends a run whose server stopped answering.
	ctx, cancel := context.WithTimeout(context.Background(), *duration+5*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, *dsn+fmt.Sprintf("&pool_max_conns=%d", *writers+2))
	if err != nil {
		fail(fmt.Errorf("connect: %w", err))
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, schema); err != nil {
		fail(fmt.Errorf("create table: %w", err))
	}
	payload := make([]byte, *eventBytes)
	_, _ = rand.Read(payload)
	var s summary
	switch *mode {
	case "append":
		s, err = appendRun(ctx, pool, *writers, payload, *duration, *operations)
	case "read-stream":
		s, err = readRun(ctx, pool, *events, *others, payload, *duration, *operations)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pgappend:", err)
	os.Exit(1)
}

// appendRun: each writer inserts version 0, 1, 2, ... of its stream, one
// INSERT per transaction; the primary key is the optimistic-concurrency check.
func appendRun(ctx context.Context, pool *pgxpool.Pool, writers int, payload []byte, duration time.Duration, limit int64) (summary, error) {
	var budget atomic.Int64
	budget.Store(limit)
	var mu sync.Mutex
	var samples []int64
	var firstErr error
	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("writer-%d", w)
			var local []int64
			for version := int64(0); time.Now().Before(end) && budget.Add(-1) >= 0; version++ {
				began := time.Now()
				_, err := pool.Exec(ctx, `INSERT INTO events (stream, version, id, type, data) VALUES ($1, $2, gen_random_uuid(), 'BenchEvent', $3)`,
					stream, version, payload)
				if err != nil {
					mu.Lock()
					firstErr = fmt.Errorf("append %s version %d: %w", stream, version, err)
					mu.Unlock()
					return
				}
				local = append(local, int64(time.Since(began)))
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return summary{}, firstErr
	}
	s := summary{Workload: "append", Writers: writers, Operations: int64(len(samples)), Records: int64(len(samples))}
	s.rates(time.Since(start))
	s.Latency = percentiles(samples)
	return s, nil
}

// readRun loads other events and the stream's, spread among them, then
// reads the stream whole (ordered by version) again and again.
func readRun(ctx context.Context, pool *pgxpool.Pool, events, others int, payload []byte, duration time.Duration, limit int64) (summary, error) {
	rows := make([][]any, 0, events+others)
	every := max(1, others/events)
	target := 0
	for i := 0; i < others; i++ {
		rows = append(rows, []any{fmt.Sprintf("other-%d", i/1000), int64(i % 1000), payload})
		if i%every == 0 && target < events {
			rows = append(rows, []any{"read-target", int64(target), payload})
			target++
		}
	}
	for ; target < events; target++ {
		rows = append(rows, []any{"read-target", int64(target), payload})
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE events ALTER COLUMN id SET DEFAULT gen_random_uuid(), ALTER COLUMN type SET DEFAULT 'BenchEvent'`); err != nil {
		return summary{}, fmt.Errorf("column defaults: %w", err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"stream", "version", "data"}, pgx.CopyFromRows(rows)); err != nil {
		return summary{}, fmt.Errorf("load: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE events`); err != nil {
		return summary{}, fmt.Errorf("analyze: %w", err)
	}
	var samples []int64
	var read int64
	start := time.Now()
	for end := start.Add(duration); time.Now().Before(end) && int64(len(samples)) < limit; {
		began := time.Now()
		r, err := pool.Query(ctx, `SELECT version, id, type, data FROM events WHERE stream = 'read-target' ORDER BY version`)
		if err != nil {
			return summary{}, fmt.Errorf("read stream: %w", err)
		}
		n := 0
		for r.Next() {
			n++
		}
		if err := r.Err(); err != nil {
			return summary{}, fmt.Errorf("read stream: %w", err)
		}
		if n != events {
			return summary{}, fmt.Errorf("read %d events, want %d", n, events)
		}
		samples = append(samples, int64(time.Since(began)))
		read += int64(n)
	}
	s := summary{Workload: "read-stream", Operations: int64(len(samples)), Records: read}
	s.rates(time.Since(start))
	s.Latency = percentiles(samples)
	return s, nil
}

func (s *summary) rates(elapsed time.Duration) {
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.OperationsPerSecond = float64(s.Operations) / elapsed.Seconds()
		s.RecordsPerSecond = float64(s.Records) / elapsed.Seconds()
	}
}

func percentiles(ns []int64) *latency {
	if len(ns) == 0 {
		return nil
	}
	slices.Sort(ns)
	at := func(q float64) float64 { return float64(ns[min(len(ns)-1, int(q*float64(len(ns))))]) / 1e6 }
	return &latency{P50Ms: at(0.50), P90Ms: at(0.90), P99Ms: at(0.99), P999Ms: at(0.999), MaxMs: float64(ns[len(ns)-1]) / 1e6}
}
