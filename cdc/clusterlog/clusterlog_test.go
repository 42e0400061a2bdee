package clusterlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cdc/postgres"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/pgtest"
	"github.com/cairnlog/cairn/storage/vfs"
)

var pg = pgtest.Cluster{Logical: true}

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func openCluster(t *testing.T, fsys vfs.FS) *cluster.Cluster {
	t.Helper()
	e := env.Real()
	e.FS, e.Logger = fsys, slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cluster.Open(e, cluster.DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func positioned(pos cdc.Position, key string) batch.Record {
	return batch.Record{Key: []byte(key), Value: []byte("v"), Headers: []batch.RecordHeader{{Key: cdc.HeaderPosition, Value: []byte(pos.String())}}}
}

// The last position is found behind records without one (written by
// others) however many, and survives a restart of the node.
func TestLastPosition(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	l := New(c)
	ctx := context.Background()
	pid := cdc.PartitionID{Topic: "db.public.t"}
	if n, err := l.Partitions(ctx, pid.Topic, 2, nil); err != nil || n != 2 {
		t.Fatalf("Partitions = %d, %v", n, err)
	}
	if pos, err := l.LastPosition(ctx, pid); err != nil || !pos.IsZero() {
		t.Fatalf("empty partition: %v, %v", pos, err)
	}
	for i := 1; i <= 3; i++ {
		wait, err := l.Append(ctx, pid, []batch.Record{positioned(cdc.Position{CommitLSN: uint64(i * 100), Index: 0}, "k"), positioned(cdc.Position{CommitLSN: uint64(i * 100), Index: 1}, "k")})
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 300 records of someone else's after the connector's.
	p, _ := c.Partition(pid.Topic, 0)
	for i := 0; i < 300; i++ {
		res, err := p.Append(batch.Build([]batch.Record{{Key: []byte("other"), Value: []byte("x")}}, batch.None))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitAppended(ctx, res, true); err != nil {
			t.Fatal(err)
		}
	}
	want := cdc.Position{CommitLSN: 300, Index: 1}
	if pos, err := l.LastPosition(ctx, pid); err != nil || pos != want {
		t.Fatalf("LastPosition = %v, %v; want %v", pos, err, want)
	}
	if got := l.Topics("db."); len(got) != 1 || got[0] != pid.Topic {
		t.Fatalf("Topics = %v", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if pos, err := New(c).LastPosition(ctx, pid); err != nil || pos != want {
		t.Fatalf("after a restart: %v, %v; want %v", pos, err, want)
	}
}

// A connector writing into a node's partitions: a stop and a restart with
// changes made in between give each change once.
func TestConnectorIntoPartitions(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	c := openCluster(t, vfs.NewMem())
	defer c.Close()
	// Slot names are the server's, shared by its databases: one per run.
	cfg := postgres.Config{Name: "node", DSN: dsn, Partitions: 2, Slot: "cairn_node_" + dbName(dsn)}
	// run runs a connector, inserts rows, and stops it once the topic holds
	// want records (bounded).
	run := func(want int, rows ...int) {
		conn, err := postgres.New(cfg, New(c), env.RealClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- conn.Run(rctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}()
		for i := 0; i < 300 && conn.Status().State != "streaming"; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		for _, r := range rows {
			if _, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO t VALUES (%d, 'x')`, r)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 600 && countRecords(t, c, "node.public.t") < want; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}
	run(3, 1, 2, 3)
	// Changes made while no connector runs come at the next start.
	if _, err := db.Exec(ctx, `INSERT INTO t VALUES (4, 'while stopped')`); err != nil {
		t.Fatal(err)
	}
	run(5, 5)
	if n := countRecords(t, c, "node.public.t"); n != 5 {
		t.Fatalf("%d records, want 5", n)
	}
}

func countRecords(t *testing.T, c *cluster.Cluster, topic string) int {
	t.Helper()
	tp, ok := c.Topic(topic)
	if !ok {
		return 0
	}
	n := 0
	for i := range tp.Partitions {
		p, err := c.Partition(topic, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < p.HighWatermark(); {
			res, err := p.Read(off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for rest := res.Records; len(rest) > 0; {
				h, whole, tail, err := batch.Next(rest)
				if err != nil {
					t.Fatal(err)
				}
				recs, err := batch.Records(whole, batch.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				n += len(recs)
				rest, off = tail, h.NextOffset()
			}
		}
	}
	return n
}

// dbName is the database a test DSN names.
func dbName(dsn string) string {
	db := dsn[strings.LastIndex(dsn, "/")+1:]
	db, _, _ = strings.Cut(db, "?")
	return db
}
