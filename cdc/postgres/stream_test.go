package postgres

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/cdc"
)

// Inserts, updates, deletes (each followed by its tombstone), a truncate
// and a logical message arrive as Debezium envelopes, keyed by the primary
// key, with the position and CloudEvents headers.
func TestStreamChanges(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE orders (id int PRIMARY KEY, note text, qty int)`)
	log := newMemLog()
	r := start(t, Config{Name: "shop", DSN: dsn, Tables: []string{"orders"}}, log)
	r.waitStreaming(t)

	exec(t, db,
		`INSERT INTO orders VALUES (1, 'one', 1), (2, 'two', 2)`,
		`UPDATE orders SET qty = 10 WHERE id = 1`,
		`DELETE FROM orders WHERE id = 2`,
		`TRUNCATE orders`,
		`SELECT pg_logical_emit_message(true, 'audit', 'hello')`,
		`SELECT pg_logical_emit_message(false, 'audit', 'loose')`,
	)
	recs := log.waitRecords(t, "shop.public.orders", 6, r.errs)
	want := []struct{ op, key string }{{"c", `{"id":1}`}, {"c", `{"id":2}`}, {"u", `{"id":1}`}, {"d", `{"id":2}`}, {"", `{"id":2}`}, {"t", ``}}
	for i, w := range want {
		rec := recs[i]
		if string(rec.Key) != w.key {
			t.Errorf("record %d: key %s, want %s", i, rec.Key, w.key)
		}
		if w.op == "" {
			if rec.Value != nil {
				t.Errorf("record %d: want the tombstone, got %s", i, rec.Value)
			}
			continue
		}
		if e := decode(t, rec); e.Op != w.op {
			t.Errorf("record %d: op %s, want %s", i, e.Op, w.op)
		}
	}
	ins := decode(t, recs[0])
	if ins.After["note"] != "one" || ins.After["qty"] != float64(1) || ins.Before != nil || ins.Source.Table != "orders" || ins.Source.TxID == 0 || ins.Source.LSN == 0 {
		t.Errorf("insert envelope: %+v", ins)
	}
	// source.sequence: the update's last commit is the insert's commit.
	insPos, err := cdc.ParsePosition(header(recs[0], cdc.HeaderPosition))
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	if err := json.Unmarshal([]byte(decode(t, recs[2]).Source.Sequence), &seq); err != nil || len(seq) != 2 ||
		seq[0] != strconv.FormatUint(insPos.CommitLSN, 10) || seq[1] != strconv.FormatInt(decode(t, recs[2]).Source.LSN, 10) {
		t.Errorf("update's sequence %v (%v), want [insert's commit %d, its lsn]", seq, err, insPos.CommitLSN)
	}
	// REPLICA IDENTITY DEFAULT: no before image of an update; a delete's
	// has the key only.
	if upd := decode(t, recs[2]); upd.Before != nil || upd.After["qty"] != float64(10) {
		t.Errorf("update envelope: %+v", upd)
	}
	if del := decode(t, recs[3]); del.Before["id"] != float64(2) || del.Before["note"] != nil || del.After != nil {
		t.Errorf("delete envelope: %+v", del)
	}
	for _, h := range []string{"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject", "content-type", cdc.HeaderPosition} {
		if header(recs[0], h) == "" {
			t.Errorf("insert record lacks header %s", h)
		}
	}
	msgs := log.waitRecords(t, "shop.message", 2, r.errs)
	for i, content := range []string{"aGVsbG8=", "bG9vc2U="} {
		e := decode(t, msgs[i])
		if e.Op != "m" || e.Message == nil || e.Message.Prefix != "audit" || e.Message.Content != content {
			t.Errorf("message %d: %s", i, msgs[i].Value)
		}
	}
	// Positions rise in the partition: commit order.
	var last cdc.Position
	for i, rec := range recs {
		p, ok, err := cdc.RecordPosition(rec)
		if !ok || err != nil || p.Less(last) {
			t.Fatalf("record %d: position %v after %v (%v)", i, p, last, err)
		}
		last = p
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after a stop: %v", err)
	}
}

// Every type the connector renders, through PostgreSQL's own output.
func TestStreamColumnTypes(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TYPE mood AS ENUM ('sad', 'ok')`, `CREATE TABLE t (
		id bigint PRIMARY KEY, b bool, i2 smallint, i4 int, f4 real, f8 double precision,
		n numeric(20,4), nnan numeric, txt text, vc varchar(10), ch char(3), u uuid, j json, jb jsonb,
		by bytea, d date, tm time, ts timestamp, ts3 timestamp(3), tz timestamptz,
		ia int[], ta text[], m mood, iv interval)`)
	log := newMemLog()
	r := start(t, Config{Name: "types", DSN: dsn}, log)
	r.waitStreaming(t)
	exec(t, db, `SET TIME ZONE 'Europe/Paris'`, `INSERT INTO t VALUES (
		9007199254740993, true, -2, 40000, 1.5, 'NaN', 12345.6789, 'NaN', 'héllo "q"', 'v', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		'{"k": [1, 2]}', '{"k": [1, 2]}', '\x00ff', '2026-01-02', '13:14:15.5', '2026-01-02 03:04:05.123456',
		'2026-01-02 03:04:05.123', '2026-01-02 04:04:05.5+01', '{1,NULL,3}', '{"a b",c}', 'ok', '1 year 2 months 3 days 04:05:06')`)
	recs := log.waitRecords(t, "types.public.t", 1, r.errs)
	var v struct {
		After map[string]json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(recs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id": `9007199254740993`, "b": `true`, "i2": `-2`, "i4": `40000`, "f4": `1.5`, "f8": `"NaN"`,
		"n": `"12345.6789"`, "nnan": `"NaN"`, "txt": `"héllo \"q\""`, "vc": `"v"`, "ch": `"ab "`,
		"u": `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, "j": `"{\"k\": [1, 2]}"`, "jb": `"{\"k\": [1, 2]}"`,
		"by": `"AP8="`, "d": `20455`, "tm": `47655500000`, "ts": `1767323045123456`, "ts3": `1767323045123`,
		"tz": `"2026-01-02T03:04:05.5Z"`, "ia": `[1,null,3]`, "ta": `["a b","c"]`, "m": `"ok"`,
		"iv": `37091106000000`,
	}
	for col, w := range want {
		if got := string(v.After[col]); got != w {
			t.Errorf("%s = %s, want %s", col, got, w)
		}
	}
	if string(recs[0].Key) != `{"id":9007199254740993}` {
		t.Errorf("key %s", recs[0].Key)
	}
}

// REPLICA IDENTITY FULL gives updates and deletes their whole before
// image; the key stays the primary key.
func TestStreamReplicaIdentityFull(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE f (id int PRIMARY KEY, v text)`, `ALTER TABLE f REPLICA IDENTITY FULL`, `INSERT INTO f VALUES (1, 'old')`)
	log := newMemLog()
	r := start(t, Config{Name: "full", DSN: dsn}, log)
	r.waitStreaming(t)
	exec(t, db, `UPDATE f SET v = 'new' WHERE id = 1`, `DELETE FROM f WHERE id = 1`)
	recs := log.waitRecords(t, "full.public.f", 4, r.errs)
	// The row the table held at the start comes first, from the snapshot.
	if snap := decode(t, recs[0]); snap.Op != "r" || snap.Source.Snapshot != "true" || snap.After["v"] != "old" {
		t.Errorf("snapshot row: %+v", snap)
	}
	upd, del := decode(t, recs[1]), decode(t, recs[2])
	if upd.Before["v"] != "old" || upd.After["v"] != "new" {
		t.Errorf("update before/after: %+v", upd)
	}
	if del.Before["v"] != "new" || string(recs[2].Key) != `{"id":1}` {
		t.Errorf("delete: %+v key %s", del, recs[2].Key)
	}
}

// A TOASTed column an update leaves alone is not sent: it is marked, not
// null.
func TestStreamUnchangedToast(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE big (id int PRIMARY KEY, doc text, n int)`, `ALTER TABLE big ALTER doc SET STORAGE EXTERNAL`)
	log := newMemLog()
	r := start(t, Config{Name: "toast", DSN: dsn}, log)
	r.waitStreaming(t)
	doc := strings.Repeat("x", 20000)
	exec(t, db, `INSERT INTO big VALUES (1, '`+doc+`', 1)`, `UPDATE big SET n = 2 WHERE id = 1`)
	recs := log.waitRecords(t, "toast.public.big", 2, r.errs)
	if ins := decode(t, recs[0]); ins.After["doc"] != doc {
		t.Errorf("insert: doc of %d bytes", len(ins.After["doc"].(string)))
	}
	if upd := decode(t, recs[1]); upd.After["doc"] != cdc.UnavailableValue || upd.After["n"] != float64(2) {
		t.Errorf("update after: %v", upd.After)
	}
}

// A column added and one dropped while streaming are picked up from the
// Relation messages, without a restart.
func TestStreamColumnAddedAndDropped(t *testing.T) {
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE s (id int PRIMARY KEY, a text, gone int)`)
	log := newMemLog()
	r := start(t, Config{Name: "ddl", DSN: dsn}, log)
	r.waitStreaming(t)
	exec(t, db, `INSERT INTO s VALUES (1, 'x', 5)`, `ALTER TABLE s ADD COLUMN added int DEFAULT 7`, `ALTER TABLE s DROP COLUMN gone`, `INSERT INTO s VALUES (2, 'y', 8)`)
	recs := log.waitRecords(t, "ddl.public.s", 2, r.errs)
	first, second := decode(t, recs[0]), decode(t, recs[1])
	if _, ok := first.After["added"]; ok || first.After["gone"] != float64(5) {
		t.Errorf("first row: %v", first.After)
	}
	if _, ok := second.After["gone"]; ok || second.After["added"] != float64(8) {
		t.Errorf("second row: %v", second.After)
	}
}

// A transaction larger than logical_decoding_work_mem (64 kB in pgtest)
// is streamed in progress (protocol v2) and still arrives whole, in order,
// once, after its commit; an aborted one does not arrive at all.
func TestStreamLargeTransaction(t *testing.T) {
	const rows = 5000
	dsn := pg.CreateDatabase(t)
	db := connect(t, dsn)
	exec(t, db, `CREATE TABLE l (id int PRIMARY KEY, pad text)`)
	log := newMemLog()
	r := start(t, Config{Name: "large", DSN: dsn, BatchBytesMax: 256 << 10}, log)
	r.waitStreaming(t)
	exec(t, db, `BEGIN`, `INSERT INTO l SELECT g, repeat('p', 100) FROM generate_series(1, 3000) g`, `ROLLBACK`)
	exec(t, db, `BEGIN`, `INSERT INTO l SELECT g, repeat('p', 100) FROM generate_series(1, 5000) g`,
		`SAVEPOINT s1`, `INSERT INTO l SELECT g, 'gone' FROM generate_series(100001, 101000) g`, `ROLLBACK TO SAVEPOINT s1`, `COMMIT`)
	exec(t, db, `INSERT INTO l VALUES (0, 'after')`)
	recs := log.waitRecords(t, "large.public.l", rows+1, r.errs)
	if len(recs) != rows+1 {
		t.Fatalf("%d records, want %d", len(recs), rows+1)
	}
	for i := 0; i < rows; i++ {
		if want := `{"id":` + itoa(i+1) + `}`; string(recs[i].Key) != want {
			t.Fatalf("record %d: key %s, want %s", i, recs[i].Key, want)
		}
	}
	if string(recs[rows].Key) != `{"id":0}` {
		t.Fatalf("the next transaction's row: %s", recs[rows].Key)
	}
	if st := r.c.Status(); st.ProtocolVersion == 2 && st.StreamedTransactions == 0 {
		t.Fatalf("protocol v2, yet no transaction was streamed in progress: %+v", st)
	}
}

func itoa(i int) string { return string(json.RawMessage(jsonInt(i))) }

func jsonInt(i int) []byte { b, _ := json.Marshal(i); return b }
