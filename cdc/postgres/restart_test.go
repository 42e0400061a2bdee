package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cairnlog/cairn/env"
)

// The connector dies between appends and their confirmation again and
// again while transactions touching two tables commit: after each restart
// it reads its position from the log, and in the end every committed change
// is in the log exactly once, in commit order per key.
func TestRestartsLoseAndDoubleNothing(t *testing.T) {
	const (
		txns     = 60
		keys     = 7
		restarts = 8
	)
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE a (id int PRIMARY KEY, v int)`, `CREATE TABLE b (id int PRIMARY KEY, v int)`)
	log := newMemLog()
	cfg := Config{Name: "crash", DSN: dsn, Partitions: 3}

	r := start(t, cfg, log)
	r.waitStreaming(t)
	// Each transaction writes value i to one key of each table, while the
	// connector crashes and restarts.
	written := make(chan error, 1)
	go func() {
		w, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			written <- err
			return
		}
		defer w.Close(context.Background())
		for i := 1; i <= txns; i++ {
			k := i % keys
			if _, err := w.Exec(context.Background(), fmt.Sprintf(`BEGIN; INSERT INTO a VALUES (%d, %d) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v; INSERT INTO b VALUES (%d, %d) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v; COMMIT`, k, i, k, i)); err != nil {
				written <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		written <- nil
	}()
	crashes, provoked := 0, 0
	for writing := true; writing || crashes < restarts; {
		log.mu.Lock()
		// A crash on the 2nd append from now: a transaction may be in one
		// table's partition and not the other's.
		log.crashAfter = log.appends + 2
		log.mu.Unlock()
		if !writing {
			// Nothing more is written: provoke appends (negative ids).
			provoked++
			exec(t, db, fmt.Sprintf(`BEGIN; INSERT INTO b VALUES (%d, 0); INSERT INTO a VALUES (%d, 0); COMMIT`, -provoked, -provoked))
		}
		select {
		case err := <-written:
			if err != nil {
				t.Fatal(err)
			}
			writing = false
			continue
		case err := <-r.errs:
			if !errors.Is(err, errCrash) {
				t.Fatalf("the connector stopped: %v", err)
			}
			r.cancel = nil
		case <-time.After(60 * time.Second):
			t.Fatal("no crash within 60 s")
		}
		crashes++
		r = start(t, cfg, log)
	}
	log.mu.Lock()
	log.crashAfter = 0
	log.mu.Unlock()
	for _, table := range []string{"a", "b"} {
		seen := map[float64]bool{}
		lastPerKey := map[float64]float64{}
		recs := log.waitRecords(t, "crash.public."+table, txns+provoked, r.errs)
		var kept int
		for _, rec := range recs {
			e := decode(t, rec)
			id, v := e.After["id"].(float64), e.After["v"].(float64)
			if id < 0 {
				continue
			}
			kept++
			if seen[v] {
				t.Fatalf("table %s: value %v twice (after %d crashes)", table, v, crashes)
			}
			seen[v] = true
			if v < lastPerKey[id] {
				t.Fatalf("table %s key %v: %v after %v, out of commit order", table, id, v, lastPerKey[id])
			}
			lastPerKey[id] = v
		}
		if kept != txns {
			t.Fatalf("table %s: %d records, want %d", table, kept, txns)
		}
	}
	t.Logf("%d crashes between append and confirm", crashes)
}

// A slot dropped and recreated while the connector was away would skip the
// changes in between: the connector refuses to start.
func TestRecreatedSlotDetected(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE r (id int PRIMARY KEY)`)
	log := newMemLog()
	cfg := Config{Name: "reslot", DSN: dsn}
	r := start(t, cfg, log)
	r.waitStreaming(t)
	exec(t, db, `INSERT INTO r VALUES (1)`)
	log.waitRecords(t, "reslot.public.r", 1, r.errs)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO r VALUES (2)`) // never captured: the slot goes
	slot := uniqueSlot(cfg).Slot
	dropSlot(t, db, slot)

	// Dropped: the log holds changes, the slot is gone.
	if err := runOnce(t, cfg, log); !errors.Is(err, ErrSlotLost) {
		t.Fatalf("start without the slot: %v, want ErrSlotLost", err)
	}
	// Recreated: its position is past what the log holds.
	exec(t, db, `SELECT pg_create_logical_replication_slot('`+slot+`', 'pgoutput')`, `INSERT INTO r VALUES (3)`)
	if err := runOnce(t, cfg, log); !errors.Is(err, ErrSlotLost) {
		t.Fatalf("start on a recreated slot: %v, want ErrSlotLost", err)
	}
}

// runOnce runs a connector until it stops by itself (bounded).
func runOnce(t *testing.T, cfg Config, log Log) error {
	t.Helper()
	c, err := New(uniqueSlot(cfg), log, env.RealClock(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the connector ran on for 30 s")
	}
	return err
}

// An idle connector whose tables see no changes still moves its slot
// forward (heartbeat records), so the slot does not hold the WAL others
// write.
func TestHeartbeatAdvancesIdleSlot(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE watched (id int PRIMARY KEY)`, `CREATE TABLE other (id int PRIMARY KEY, pad text)`)
	log := newMemLog()
	r := start(t, Config{Name: "idle", DSN: dsn, Tables: []string{"watched"}, HeartbeatInterval: 100 * time.Millisecond, StatusInterval: 100 * time.Millisecond}, log)
	r.waitStreaming(t)
	var before pglogrepl.LSN
	if err := db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, r.c.cfg.Slot).Scan(&before); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO other SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g`)
	var walNow pglogrepl.LSN
	if err := db.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()`).Scan(&walNow); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var confirmed pglogrepl.LSN
		if err := db.QueryRow(context.Background(), `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1`, r.c.cfg.Slot).Scan(&confirmed); err != nil {
			t.Fatal(err)
		}
		if confirmed >= walNow {
			break
		}
		if i == 300 {
			t.Fatalf("slot confirmed at %s after 30 s (from %s), the WAL is at %s", confirmed, before, walNow)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(log.records("idle.public.watched")) != 0 {
		t.Fatal("events for a table without changes")
	}
	if len(log.records(HeartbeatTopic("idle"))) < 2 {
		t.Fatal("no heartbeat record after the slot's creation")
	}
}

// dropSlot drops a slot once the server's sender of the stopped connector
// has let it go (bounded).
func dropSlot(t *testing.T, db *pgx.Conn, slot string) {
	t.Helper()
	for i := 0; ; i++ {
		_, err := db.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, slot)
		if err == nil {
			return
		}
		if i == 100 {
			t.Fatalf("drop slot %s: %v", slot, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
