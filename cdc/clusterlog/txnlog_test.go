package clusterlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cdc"
	"github.com/cairnlog/cairn/cdc/postgres"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/txn"
)

// localMarkers writes a transaction's markers to this node's partitions,
// as the Kafka server's marker writer does for the partitions it leads.
type localMarkers struct{ c *cluster.Cluster }

func (m localMarkers) WriteMarker(ctx context.Context, tp txn.TopicPartition, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) error {
	p, err := m.c.Partition(tp.Topic, tp.Partition)
	if err != nil {
		return err
	}
	res, err := p.WriteMarker(producerID, producerEpoch, commit, coordinatorEpoch)
	if err != nil {
		return err
	}
	return p.WaitAppended(ctx, res, true)
}

var errKilled = errors.New("killed between two partitions' appends")

// A database transaction spanning two partitions, cut short by a crash
// after the first partition's append: a read_committed reader sees none of
// it, and the restarted connector writes all of it exactly once (the
// records the crash left are aborted, not counted as held).
func TestTransactionAcrossPartitionsAllOrNone(t *testing.T) {
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
	co, err := txn.Open(c, txn.Config{}, localMarkers{c}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	l := NewTxn(c, co)
	var mu sync.Mutex
	armed, crashed := false, false
	l.beforeEnd = func(cdc.PartitionID) error {
		mu.Lock()
		defer mu.Unlock()
		if armed {
			armed, crashed = false, true
			return errKilled
		}
		return nil
	}
	cfg := postgres.Config{Name: "atomic", DSN: dsn, Partitions: 2, Slot: "cairn_atomic_" + dbName(dsn), SnapshotMode: postgres.SnapshotNever}
	const topic = "atomic.public.t"
	run := func() (*postgres.Connector, context.CancelFunc, chan error) {
		conn, err := postgres.New(cfg, l, env.RealClock(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- conn.Run(rctx) }()
		for i := 0; i < 300 && conn.Status().State != "streaming"; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if st := conn.Status(); st.State != "streaming" {
			t.Fatalf("connector %s: %s", st.State, st.Error)
		}
		return conn, cancel, done
	}

	// A first transaction, whole: the topic and both partitions exist.
	_, cancel, done := run()
	if _, err := db.Exec(ctx, `INSERT INTO t SELECT g, 'before' FROM generate_series(1, 10) g`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600 && len(committedKeys(t, c, topic)) < 10; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	armed = true
	mu.Unlock()
	if _, err := db.Exec(ctx, `INSERT INTO t SELECT g, 'cut' FROM generate_series(11, 30) g`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errKilled) {
			t.Fatalf("connector stopped with %v, want the injected crash", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connector did not reach the crash")
	}
	cancel()
	mu.Lock()
	if !crashed {
		t.Fatal("no crash injected")
	}
	mu.Unlock()
	if n := countRecords(t, c, topic); n <= 10 {
		t.Fatalf("%d records in the log after the crash: the first partition's part should be there (uncommitted)", n)
	}
	if keys := committedKeys(t, c, topic); len(keys) != 10 {
		t.Fatalf("read_committed sees %d records after a crash between partitions, want the first transaction's 10 only", len(keys))
	}

	_, cancel, done = run()
	for i := 0; i < 600 && len(committedKeys(t, c, topic)) < 30; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	keys := committedKeys(t, c, topic)
	for id := 1; id <= 30; id++ {
		if n := keys[fmt.Sprintf(`{"id":%d}`, id)]; n != 1 {
			t.Errorf("id %d: %d times, want once", id, n)
		}
	}
	if len(keys) != 30 {
		t.Errorf("%d keys, want 30", len(keys))
	}
}

// committedKeys counts the keys a read_committed reader of the topic sees.
func committedKeys(t *testing.T, c *cluster.Cluster, topic string) map[string]int {
	t.Helper()
	keys := map[string]int{}
	tp, ok := c.Topic(topic)
	if !ok {
		return keys
	}
	for i := range tp.Partitions {
		p, err := c.Partition(topic, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); ; {
			res, _, err := p.ReadAppendIsolated(nil, off, 1<<20, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) == 0 {
				break
			}
			for rest := res.Records; len(rest) > 0; {
				h, whole, tail, err := batch.Next(rest)
				if err != nil {
					t.Fatal(err)
				}
				rest, off = tail, h.NextOffset()
				if h.Control() || aborted(res.Aborted, h) {
					continue
				}
				recs, err := batch.Records(whole, batch.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					keys[string(r.Key)]++
				}
			}
		}
	}
	return keys
}

func aborted(list []partition.AbortedTxn, h batch.Header) bool {
	for _, a := range list {
		if h.Transactional() && a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
			return true
		}
	}
	return false
}

// A second writer of the same transactional id (the connector started on
// another node after a failover) fences the first: the first's next atomic
// append is refused and writes nothing a read_committed reader sees.
func TestFenceStopsTheEarlierWriter(t *testing.T) {
	c := openCluster(t, vfs.NewMem())
	defer c.Close()
	co, err := txn.Open(c, txn.Config{}, localMarkers{c}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	const topic, id = "db.public.t", "__cairn_cdc_db"
	old, next := NewTxn(c, co), NewTxn(c, co)
	if _, err := old.Partitions(ctx, topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	plan := func(lsn uint64) []cdc.Batch {
		var out []cdc.Batch
		for i := int32(0); i < 2; i++ {
			pos := cdc.Position{CommitLSN: lsn, Index: uint32(i)}
			out = append(out, cdc.Batch{Partition: cdc.PartitionID{Topic: topic, Index: i}, Records: []batch.Record{positioned(pos, fmt.Sprint(i))}, Last: pos})
		}
		return out
	}
	if err := old.Fence(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := old.AppendAtomic(ctx, id, plan(100)); err != nil {
		t.Fatal(err)
	}
	if err := next.Fence(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := old.AppendAtomic(ctx, id, plan(200)); !errors.Is(err, txn.ErrProducerFenced) {
		t.Fatalf("the fenced writer's append: %v, want ErrProducerFenced", err)
	}
	if err := next.AppendAtomic(ctx, id, plan(300)); err != nil {
		t.Fatal(err)
	}
	for i := int32(0); i < 2; i++ {
		pos, err := next.LastPosition(ctx, cdc.PartitionID{Topic: topic, Index: i})
		if err != nil || pos.CommitLSN != 300 {
			t.Fatalf("partition %d: last position %v, %v, want commit 300", i, pos, err)
		}
	}
	if keys := committedKeys(t, c, topic); len(keys) != 2 || keys["0"] != 2 || keys["1"] != 2 {
		t.Fatalf("read_committed sees %v, want each key twice (commits 100 and 300, not the fenced 200)", keys)
	}
}
