package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cdc"
)

// A service writes its order and an outbox row in one transaction: the
// row becomes one event of stream order/<id> in the event-store topic (id,
// type and data from the row), the table's delete of it is ignored, and
// the order table still gets its change events.
func TestOutboxRoutesToStreams(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE orders (id int PRIMARY KEY, total int)`,
		`CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`)
	log := newMemLog()
	r := start(t, Config{Name: "svc", DSN: dsn, Outbox: &cdc.Outbox{Table: "outbox", Topic: "orders-events"}}, log)
	r.waitStreaming(t)
	exec(t, db, `BEGIN; INSERT INTO orders VALUES (7, 30);
		INSERT INTO outbox VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '7', 'OrderPlaced', '{"total": 30}');
		DELETE FROM outbox; COMMIT`)
	evs := log.waitRecords(t, "orders-events", 1, r.errs)
	ev := evs[0]
	if string(ev.Key) != "order/7" || string(ev.Value) != `{"total": 30}` || header(ev, "ce_type") != "OrderPlaced" ||
		header(ev, "ce_id") != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" || header(ev, "cairn-expected-revision") != "any" {
		t.Fatalf("outbox event: key %s value %s headers %v", ev.Key, ev.Value, ev.Headers)
	}
	if got := log.configs["orders-events"]["cleanup.policy"]; got != "stream" {
		t.Fatalf("the outbox topic was created with cleanup.policy=%q", got)
	}
	if orders := log.waitRecords(t, "svc.public.orders", 1, r.errs); decode(t, orders[0]).Op != "c" {
		t.Fatal("the order's change event")
	}
	if got := log.records("svc.public.outbox"); len(got) != 0 {
		t.Fatalf("the outbox table got %d change events", len(got))
	}
	exec(t, db, `INSERT INTO outbox VALUES ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'order', '7', 'OrderPaid', '{}')`)
	if evs := log.waitRecords(t, "orders-events", 2, r.errs); len(evs) != 2 || header(evs[1], "ce_type") != "OrderPaid" {
		t.Fatalf("the second event: %d events", len(evs))
	}
}

// A crash after the outbox event's append and before its confirmation:
// the transaction comes again, and the restarted connector, reading the
// outbox topic's position too, does not append the event twice.
func TestOutboxCrashAppendsOnce(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE orders (id int PRIMARY KEY)`,
		`CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`)
	log := newMemLog()
	cfg := Config{Name: "once", DSN: dsn, Outbox: &cdc.Outbox{Table: "outbox", Topic: "events"}}
	r := start(t, cfg, log)
	r.waitStreaming(t)
	log.mu.Lock()
	log.crashAfter = log.appends + 2 // the order's append and the event's, then the crash
	log.mu.Unlock()
	exec(t, db, `BEGIN; INSERT INTO orders VALUES (1);
		INSERT INTO outbox VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '1', 'OrderPlaced', '{}'); COMMIT`)
	select {
	case err := <-r.errs:
		if !errors.Is(err, errCrash) {
			t.Fatalf("first run: %v, want the crash", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no crash within 30 s")
	}
	r = start(t, cfg, log)
	r.waitStreaming(t)
	exec(t, db, `INSERT INTO orders VALUES (2)`)
	log.waitRecords(t, "once.public.orders", 2, r.errs)
	if n := len(log.records("events")); n != 1 {
		t.Fatalf("%d outbox events, want 1", n)
	}
	if n := len(log.records("once.public.orders")); n != 2 {
		t.Fatalf("%d order events, want 2", n)
	}
}

// The outbox rows a snapshot reads come out in the order their
// transactions wrote them, not in key order: here the keys fall as the
// events rise (the walk-through once got an order's "shipped" at revision 0
// and its "placed" at 1, by random uuids).
func TestOutboxSnapshotKeepsWriteOrder(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`,
		`INSERT INTO outbox VALUES ('f0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '1', 'OrderPlaced', '{}')`,
		`INSERT INTO outbox VALUES ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '2', 'OrderPlaced', '{}')`,
		`INSERT INTO outbox VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '1', 'OrderPaid', '{}')`,
		`INSERT INTO outbox VALUES ('00eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '1', 'OrderShipped', '{}')`)
	log := newMemLog()
	r := start(t, Config{Name: "snap", DSN: dsn, Outbox: &cdc.Outbox{Table: "outbox", Topic: "events"}}, log)
	evs := log.waitRecords(t, "events", 4, r.errs)
	var got []string
	for _, ev := range evs {
		got = append(got, string(ev.Key)+" "+header(ev, "ce_type"))
	}
	want := []string{"order/1 OrderPlaced", "order/2 OrderPlaced", "order/1 OrderPaid", "order/1 OrderShipped"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("snapshot events %v, want %v", got, want)
	}
}
