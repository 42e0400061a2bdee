package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cdc"
)

// The rows the tables hold when the connector starts arrive as op=r events
// read in the slot's exported snapshot, in key order, in chunks, two tables
// at once: a row changed while the snapshot runs shows its state at the
// slot's start, and its change follows from the stream; nothing is lost or
// doubled.
func TestSnapshotConsistentWithTheStream(t *testing.T) {
	const rows = 2000
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE b (k1 text, k2 int, v int, PRIMARY KEY (k1, k2))`, `CREATE TABLE c (v int)`,
		fmt.Sprintf(`INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, %d) g`, rows),
		fmt.Sprintf(`INSERT INTO b SELECT 'k' || (g %% 7), g, g FROM generate_series(1, %d) g`, rows),
		`INSERT INTO c VALUES (1), (2)`)
	log := newMemLog()
	// Once the slot exists (its first heartbeat), before the snapshot reads
	// the tables, change a row: the snapshot must not see it.
	var once sync.Once
	changer := connect(t, dsn)
	log.onAppend = func(p cdc.PartitionID) {
		if p.Topic == HeartbeatTopic("snap") {
			once.Do(func() { exec(t, changer, fmt.Sprintf(`UPDATE a SET v = 'changed' WHERE id = %d`, rows)) })
		}
	}
	r := start(t, Config{Name: "snap", DSN: dsn, SnapshotChunkRows: 300}, log)
	r.waitStreaming(t)
	exec(t, db, `INSERT INTO a VALUES (0, 'after')`)

	recs := log.waitRecords(t, "snap.public.a", rows+2, r.errs)
	if len(recs) != rows+2 {
		t.Fatalf("a: %d records, want %d", len(recs), rows+2)
	}
	for i := 0; i < rows; i++ {
		e := decode(t, recs[i])
		want := fmt.Sprintf("v%d", i+1)
		if e.Op != "r" || e.After["id"] != float64(i+1) || e.After["v"] != want {
			t.Fatalf("a record %d: %s %v, want r of id %d = %s", i, e.Op, e.After, i+1, want)
		}
	}
	if e := decode(t, recs[rows]); e.Op != "u" || e.After["v"] != "changed" {
		t.Fatalf("the change made during the snapshot: %+v", e)
	}
	if e := decode(t, recs[rows+1]); e.Op != "c" || e.After["id"] != float64(0) {
		t.Fatalf("the insert after the snapshot: %+v", e)
	}
	bs := log.waitRecords(t, "snap.public.b", rows, r.errs)
	seen := map[string]bool{}
	for _, rec := range bs {
		if seen[string(rec.Key)] {
			t.Fatalf("b: key %s twice", rec.Key)
		}
		seen[string(rec.Key)] = true
	}
	if cs := log.waitRecords(t, "snap.public.c", 2, r.errs); cs[0].Key != nil {
		t.Fatalf("a table without a primary key: key %s", cs[0].Key)
	}
	if st := r.c.Status(); st.SnapshotTables != 3 || st.SnapshotTablesDone != 3 || st.SnapshotRows != 2*rows+2 {
		t.Fatalf("snapshot figures: %+v", st)
	}
}

// A snapshot interrupted between appends resumes after its last recorded
// chunk, not from the start, and no row is doubled or lost.
func TestSnapshotResumesAfterACrash(t *testing.T) {
	const rows = 3000
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE big (id int PRIMARY KEY, v int)`, fmt.Sprintf(`INSERT INTO big SELECT g, g FROM generate_series(1, %d) g`, rows))
	log := newMemLog()
	log.crashAfter = 12 // the slot's start, then a few chunks and their progress
	cfg := Config{Name: "resume", DSN: dsn, SnapshotChunkRows: 200, Partitions: 3}
	first := start(t, cfg, log)
	select {
	case err := <-first.errs:
		if !errors.Is(err, errCrash) {
			t.Fatalf("first run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no crash within 60 s")
	}
	before := len(log.records("resume.public.big"))
	if before == 0 || before >= rows {
		t.Fatalf("%d rows before the crash: the crash should cut the snapshot", before)
	}
	exec(t, db, `UPDATE big SET v = -1 WHERE id = 1`) // already read: comes from the stream
	second := start(t, cfg, log)
	second.waitStreaming(t)
	recs := log.waitRecords(t, "resume.public.big", rows+1, second.errs)
	ids := map[float64]int{}
	for _, rec := range recs {
		e := decode(t, rec)
		if e.Op == "r" {
			ids[e.After["id"].(float64)]++
		}
	}
	for id := 1; id <= rows; id++ {
		if ids[float64(id)] != 1 {
			t.Fatalf("row %d read %d times", id, ids[float64(id)])
		}
	}
	if st := second.c.Status(); st.SnapshotRows >= rows {
		t.Fatalf("the second run read %d rows: it started over", st.SnapshotRows)
	}
	updates := 0
	for _, rec := range recs {
		if e := decode(t, rec); e.Op == "u" && e.After["v"] == float64(-1) {
			updates++
		}
	}
	if updates != 1 {
		t.Fatalf("the change after the crash arrived %d times", updates)
	}
}
