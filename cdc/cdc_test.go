package cdc

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

func TestPositionRoundTripAndOrder(t *testing.T) {
	for _, p := range []Position{{}, {CommitLSN: 0x16B3748, Index: 0x1f}, {CommitLSN: ^uint64(0), Index: ^uint32(0)}} {
		got, err := ParsePosition(p.String())
		if err != nil || got != p {
			t.Fatalf("ParsePosition(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
	}
	for _, bad := range []string{"", "12", "x/1", "1/x", "1/100000000"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) accepted", bad)
		}
	}
	a, b, c := Position{CommitLSN: 10, Index: 5}, Position{CommitLSN: 11, Index: 0}, Position{CommitLSN: 11, Index: 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Fatalf("order: commit LSN first, then index")
	}
}

// A transaction appended to one partition before a crash is skipped there
// and still appended to the partition that did not get it.
func TestHoldingsSkipOnlyWhatAPartitionHas(t *testing.T) {
	pa, pb := PartitionID{"db.public.a", 0}, PartitionID{"db.public.b", 0}
	h := Holdings{}
	h.Advance(pa, Position{CommitLSN: 100, Index: 3})
	h.Advance(pb, Position{CommitLSN: 90, Index: 0})
	h.Advance(pb, Position{CommitLSN: 80, Index: 0}) // never moves back
	cases := []struct {
		p    PartitionID
		pos  Position
		want bool
	}{
		{pa, Position{CommitLSN: 100, Index: 2}, true},
		{pa, Position{CommitLSN: 100, Index: 3}, true},
		{pa, Position{CommitLSN: 100, Index: 4}, false},
		{pb, Position{CommitLSN: 100, Index: 0}, false},
		{pb, Position{CommitLSN: 90, Index: 0}, true},
		{PartitionID{"db.public.c", 0}, Position{CommitLSN: 1}, false},
	}
	for _, c := range cases {
		if got := h.Holds(c.p, c.pos); got != c.want {
			t.Errorf("Holds(%v, %v) = %v, want %v", c.p, c.pos, got, c.want)
		}
	}
	if m := h.Max(); m != (Position{CommitLSN: 100, Index: 3}) {
		t.Fatalf("Max = %v", m)
	}
}

func TestLastPositionIgnoresForeignRecords(t *testing.T) {
	recs := []batch.Record{
		{Headers: []batch.RecordHeader{{Key: HeaderPosition, Value: []byte("a/2")}}},
		{Headers: []batch.RecordHeader{{Key: "other", Value: []byte("x")}}},
		{Headers: []batch.RecordHeader{{Key: HeaderPosition, Value: []byte("a/1")}}},
	}
	got, err := LastPosition(recs)
	if err != nil || got != (Position{CommitLSN: 10, Index: 2}) {
		t.Fatalf("LastPosition = %v, %v", got, err)
	}
	recs = append(recs, batch.Record{Headers: []batch.RecordHeader{{Key: HeaderPosition, Value: []byte("junk")}}})
	if _, err := LastPosition(recs); err == nil {
		t.Fatal("a malformed position header was accepted")
	}
}

func TestRenderTypes(t *testing.T) {
	r := NewRenderer()
	cases := []struct {
		oid    uint32
		typmod int32
		text   string
		want   string
	}{
		{pgtype.BoolOID, -1, "t", `true`},
		{pgtype.Int2OID, -1, "-7", `-7`},
		{pgtype.Int8OID, -1, "9223372036854775807", `9223372036854775807`},
		{pgtype.Float8OID, -1, "1.5", `1.5`},
		{pgtype.Float4OID, -1, "NaN", `"NaN"`},
		{pgtype.Float8OID, -1, "-Infinity", `"-Infinity"`},
		{pgtype.NumericOID, -1, "12345678901234567890.0100", `"12345678901234567890.0100"`},
		{pgtype.TextOID, -1, `say "hi"`, `"say \"hi\""`},
		{pgtype.UUIDOID, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{pgtype.JSONBOID, -1, `{"a": 1}`, `"{\"a\": 1}"`},
		{pgtype.ByteaOID, -1, `\x00ff10`, `"AP8Q"`},
		{pgtype.DateOID, -1, "1970-01-02", `1`},
		{pgtype.DateOID, -1, "1969-12-31", `-1`},
		{pgtype.TimeOID, -1, "01:00:00.5", `3600500000`},
		{pgtype.TimestampOID, -1, "2026-01-02 03:04:05.123456", `1767323045123456`},
		{pgtype.TimestampOID, 3, "2026-01-02 03:04:05.123", `1767323045123`},
		{pgtype.TimestampOID, -1, "infinity", `9223372036854775807`},
		{pgtype.TimestamptzOID, -1, "2026-01-02 04:04:05.1+01", `"2026-01-02T03:04:05.1Z"`},
		// Intervals as IntervalStyle=postgres writes them; a month is
		// 30.4375 days, as Debezium counts it.
		{pgtype.IntervalOID, -1, "01:02:03.5", `3723500000`},
		{pgtype.IntervalOID, -1, "1 year 2 mons 3 days 04:05:06", `37091106000000`},
		{pgtype.IntervalOID, -1, "-1 days +02:00:00", `-79200000000`},
		{pgtype.IntervalOID, -1, "1 mon", `2629800000000`},
		{pgtype.IntervalOID, -1, "178000000 years", `9223372036854775807`},
		{pgtype.IntervalOID, -1, "-infinity", `-9223372036854775808`},
		{pgtype.IntervalArrayOID, -1, `{"1 day","00:00:01"}`, `[86400000000,1000000]`},
		{pgtype.Int4ArrayOID, -1, "{1,NULL,3}", `[1,null,3]`},
		{pgtype.TextArrayOID, -1, `{"a b","c,\"d\"",e}`, `["a b","c,\"d\"","e"]`},
		{pgtype.Int4ArrayOID, -1, "{{1,2},{3,4}}", `[[1,2],[3,4]]`},
		{pgtype.Int4ArrayOID, -1, "[0:1]={5,6}", `[5,6]`},
		{pgtype.TextArrayOID, -1, "{}", `[]`},
		{99999, -1, "sad", `"sad"`}, // an enum: its label
	}
	for _, c := range cases {
		got, err := r.Render(c.oid, c.typmod, []byte(c.text))
		if err != nil {
			t.Errorf("Render(%d, %q): %v", c.oid, c.text, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("Render(%d, %q) = %s, want %s", c.oid, c.text, got, c.want)
		}
	}
	for _, bad := range []struct {
		oid  uint32
		text string
	}{{pgtype.BoolOID, "yes"}, {pgtype.Int4OID, "1.5"}, {pgtype.ByteaOID, "abc"}, {pgtype.Int4ArrayOID, "{1,2"}, {pgtype.Int4ArrayOID, "{1}x"}, {pgtype.IntervalOID, "soon"}} {
		if got, err := r.Render(bad.oid, -1, []byte(bad.text)); err == nil {
			t.Errorf("Render(%d, %q) = %s, want an error", bad.oid, bad.text, got)
		}
	}
}

var orders = &Table{Schema: "public", Name: "orders", Columns: []Column{
	{Name: "id", TypeOID: pgtype.Int4OID, TypeModifier: -1, Key: true},
	{Name: "note", TypeOID: pgtype.TextOID, TypeModifier: -1},
}}

func text(s string) Datum { return Datum{Kind: DatumText, Text: []byte(s)} }

func TestEventsEnvelope(t *testing.T) {
	r := NewRenderer()
	n := Naming{Connector: "shop", Prefix: "shopdb", Database: "shop"}
	txn := Txn{XID: 750, CommitLSN: 0x1000, LastCommitLSN: 0xe00, CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Changes: []Change{
		{Op: OpCreate, Table: orders, After: Row{text("1"), text("new")}, LSN: 0xf00},
		{Op: OpUpdate, Table: orders, After: Row{text("1"), {Kind: DatumUnchanged}}, LSN: 0xf10},
		{Op: OpDelete, Table: orders, Before: Row{text("1"), {Kind: DatumNull}}, LSN: 0xf20},
		{Op: OpTruncate, Table: orders, LSN: 0xf30},
		{Op: OpMessage, Message: &Message{Prefix: "audit", Content: []byte("hi")}, LSN: 0xf40},
	}}
	evs, err := r.Events(n, txn, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6 (a tombstone after the delete)", len(evs))
	}
	want := []struct{ topic, key, value string }{
		{"shopdb.public.orders", `{"id":1}`, `{"before":null,"after":{"id":1,"note":"new"},"source":{"version":"cairn-cdc-1","connector":"postgresql","name":"shopdb","ts_ms":1767323045000,"snapshot":"false","db":"shop","sequence":"[\"3584\",\"3840\"]","schema":"public","table":"orders","txId":750,"lsn":3840},"op":"c","ts_ms":42}`},
		{"shopdb.public.orders", `{"id":1}`, `{"before":null,"after":{"id":1,"note":"__debezium_unavailable_value"},"source":{"version":"cairn-cdc-1","connector":"postgresql","name":"shopdb","ts_ms":1767323045000,"snapshot":"false","db":"shop","sequence":"[\"3584\",\"3856\"]","schema":"public","table":"orders","txId":750,"lsn":3856},"op":"u","ts_ms":42}`},
		{"shopdb.public.orders", `{"id":1}`, `{"before":{"id":1,"note":null},"after":null,"source":{"version":"cairn-cdc-1","connector":"postgresql","name":"shopdb","ts_ms":1767323045000,"snapshot":"false","db":"shop","sequence":"[\"3584\",\"3872\"]","schema":"public","table":"orders","txId":750,"lsn":3872},"op":"d","ts_ms":42}`},
		{"shopdb.public.orders", `{"id":1}`, ``},
		{"shopdb.public.orders", ``, `{"before":null,"after":null,"source":{"version":"cairn-cdc-1","connector":"postgresql","name":"shopdb","ts_ms":1767323045000,"snapshot":"false","db":"shop","sequence":"[\"3584\",\"3888\"]","schema":"public","table":"orders","txId":750,"lsn":3888},"op":"t","ts_ms":42}`},
		{"shopdb.message", `{"prefix":"audit"}`, `{"message":{"prefix":"audit","content":"aGk="},"source":{"version":"cairn-cdc-1","connector":"postgresql","name":"shopdb","ts_ms":1767323045000,"snapshot":"false","db":"shop","sequence":"[\"3584\",\"3904\"]","schema":"","table":"","txId":750,"lsn":3904},"op":"m","ts_ms":42}`},
	}
	for i, w := range want {
		ev := evs[i]
		if ev.Topic != w.topic || string(ev.Record.Key) != w.key || string(ev.Record.Value) != w.value {
			t.Errorf("event %d:\n got %s %s %s\nwant %s %s %s", i, ev.Topic, ev.Record.Key, ev.Record.Value, w.topic, w.key, w.value)
		}
		if w.value != "" && !json.Valid(ev.Record.Value) {
			t.Errorf("event %d: invalid JSON", i)
		}
	}
	if evs[3].Record.Value != nil || evs[3].Position != evs[2].Position {
		t.Fatalf("the tombstone must be a null value at its delete's position")
	}
	if evs[4].Keyed {
		t.Fatalf("a truncate has no key")
	}
	// Event ids are derived from the position, so a replay carries the same.
	again, _ := r.Events(n, txn, 43)
	for i := range evs {
		id1, id2 := header(evs[i].Record, "ce_id"), header(again[i].Record, "ce_id")
		if id1 != id2 {
			t.Fatalf("event %d: ids differ across renderings: %s, %s", i, id1, id2)
		}
		if p := header(evs[i].Record, HeaderPosition); p != evs[i].Position.String() {
			t.Fatalf("event %d: position header %q, want %q", i, p, evs[i].Position)
		}
	}
	if header(evs[0].Record, "ce_id") == header(evs[1].Record, "ce_id") {
		t.Fatal("two changes share an id")
	}
}

func TestTableTopicSanitizes(t *testing.T) {
	if got := TableTopic("p", "my schema", "Ordér"); got != "p.my_schema.Ord_r" {
		t.Fatalf("TableTopic = %q", got)
	}
	if strings.Contains(TableTopic("p", "a.b", "c"), "a.b") {
		t.Fatal("a dot in a schema name must not make a topic look nested")
	}
}

func header(r batch.Record, name string) string {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

func TestPlanPartitionsSkipsAndSplits(t *testing.T) {
	r := NewRenderer()
	n := Naming{Connector: "c", Prefix: "p", Database: "d"}
	var changes []Change
	for i := 0; i < 6; i++ {
		changes = append(changes, Change{Op: OpCreate, Table: orders, After: Row{text(strings.Repeat("1", i+1)), text("x")}})
	}
	changes = append(changes, Change{Op: OpDelete, Table: orders, Before: Row{text("1"), {Kind: DatumNull}}})
	evs, err := r.Events(n, Txn{CommitLSN: 7, Changes: changes}, 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := func(string) int32 { return 3 }

	plan, err := Plan(evs, parts, Holdings{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	seen := map[PartitionID]bool{}
	for _, b := range plan {
		if seen[b.Partition] {
			t.Fatalf("partition %v got two batches below the size limit", b.Partition)
		}
		seen[b.Partition] = true
		total += len(b.Records)
		for _, rec := range b.Records {
			if got := streams.Partition(rec.Key, 3); got != b.Partition.Index {
				t.Fatalf("key %s in partition %d, the partitioner says %d", rec.Key, b.Partition.Index, got)
			}
		}
	}
	if total != len(evs) {
		t.Fatalf("planned %d records of %d", total, len(evs))
	}

	// The partition of key 1 already holds the whole transaction (a crash
	// after its append): nothing of it again, the others complete.
	k1 := PartitionID{Topic: "p.public.orders", Index: streams.Partition([]byte(`{"id":1}`), 3)}
	held := Holdings{k1: {CommitLSN: 7, Index: 6}}
	plan, _ = Plan(evs, parts, held, 1<<20)
	for _, b := range plan {
		if b.Partition == k1 {
			for _, rec := range b.Records {
				if string(rec.Key) == `{"id":1}` {
					t.Fatalf("a held change of key 1 planned again")
				}
			}
		}
	}
	// Held up to the middle of the transaction: its tail still goes.
	held = Holdings{k1: {CommitLSN: 7, Index: 0}}
	plan, _ = Plan(evs, parts, held, 1<<20)
	n1 := 0
	for _, b := range plan {
		for _, rec := range b.Records {
			if string(rec.Key) == `{"id":1}` {
				n1++
			}
		}
	}
	if n1 != 2 {
		t.Fatalf("key 1: %d records planned after a hold at index 0, want the delete and its tombstone", n1)
	}

	// A small limit splits a partition's records, in order.
	plan, _ = Plan(evs, func(string) int32 { return 1 }, Holdings{}, 300)
	if len(plan) < 2 {
		t.Fatalf("a 300-byte limit made %d batches", len(plan))
	}
	var last Position
	for _, b := range plan {
		if b.Last.Less(last) {
			t.Fatalf("batches out of order")
		}
		last = b.Last
	}
}

// The quoting fast path writes exactly what encoding/json writes, escapes
// and HTML characters included.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "row 42", `say "hi"`, `back\slash`, "tab\there", "new\nline",
		"<b>&amp;</b>", "del\x7f", "é ünïcode", "\u2028\u2029", "bad \xff utf8", "\x00\x1f", "__debezium_unavailable_value"} {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("%q: got %s, want %s", s, got[1:], want)
		}
	}
}

// source.sequence is Debezium's: a string holding a JSON array of the last
// commit's LSN and the change's, as strings; null first when there is no
// last commit (snapshot rows).
func TestSourceSequence(t *testing.T) {
	r := NewRenderer()
	n := Naming{Connector: "shop", Prefix: "shopdb", Database: "shop"}
	for _, c := range []struct {
		last uint64
		want []*string
	}{{0xe00, []*string{ptr("3584"), ptr("3840")}}, {0, []*string{nil, ptr("3840")}}} {
		txn := Txn{XID: 1, CommitLSN: 0x1000, LastCommitLSN: c.last, Snapshot: c.last == 0, Changes: []Change{
			{Op: OpCreate, Table: orders, After: Row{text("1"), text("x")}, LSN: 0xf00}}}
		evs, err := r.Events(n, txn, 1)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Source struct{ Sequence string } }
		if err := json.Unmarshal(evs[0].Record.Value, &v); err != nil {
			t.Fatal(err)
		}
		var seq []*string
		if err := json.Unmarshal([]byte(v.Source.Sequence), &seq); err != nil {
			t.Fatalf("sequence %q: %v", v.Source.Sequence, err)
		}
		if len(seq) != 2 || !reflect.DeepEqual(seq, c.want) {
			t.Errorf("last %d: sequence %q", c.last, v.Source.Sequence)
		}
	}
}

func ptr(s string) *string { return &s }
