package cdc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// Op is a change event's kind, Debezium's op field.
type Op byte

// The change kinds.
const (
	OpCreate   Op = 'c'
	OpUpdate   Op = 'u'
	OpDelete   Op = 'd'
	OpRead     Op = 'r' // a snapshot row
	OpTruncate Op = 't'
	OpMessage  Op = 'm' // pg_logical_emit_message
)

// Column is one column of a table as its Relation message describes it.
type Column struct {
	Name         string
	TypeOID      uint32
	TypeModifier int32
	// Key marks a primary-key column: the event key is made of them (not
	// of the replica identity, which REPLICA IDENTITY FULL widens to every
	// column).
	Key bool
}

// Table is a table's current shape, replaced when a Relation message
// announces a column added or dropped.
type Table struct {
	Schema, Name string
	Columns      []Column
}

// DatumKind says what a tuple carries for a column.
type DatumKind uint8

// The kinds of column data in a tuple.
const (
	DatumNull DatumKind = iota
	// DatumUnchanged: a TOASTed value the change did not touch, which
	// PostgreSQL does not send.
	DatumUnchanged
	DatumText
)

// Datum is one column's data in a tuple, in PostgreSQL's text output.
type Datum struct {
	Kind DatumKind
	Text []byte
}

// Row is a tuple, one Datum per column of its Table, in order.
type Row []Datum

// Message is a logical decoding message (pg_logical_emit_message).
type Message struct {
	Prefix  string
	Content []byte
}

// Change is one event of a transaction.
type Change struct {
	Op    Op
	Table *Table // nil for OpMessage
	// Before is the old row (a delete's; an update's under REPLICA
	// IDENTITY FULL, or when its key changed), nil when absent. After is
	// the new row of a create, update or snapshot read.
	Before, After Row
	Message       *Message // OpMessage
	// LSN is the change's own WAL position (Debezium's source.lsn).
	LSN uint64
}

// Txn is a committed transaction's changes, in order.
type Txn struct {
	XID        uint32
	CommitLSN  uint64
	CommitTime time.Time
	Snapshot   bool // rows read by the initial snapshot
	// FirstIndex is the position index of the first change: a snapshot
	// chunk continues its table's numbering.
	FirstIndex uint32
	Changes    []Change
}

// Naming is what a connector's events are named after.
type Naming struct {
	// Connector is the connector's name: the CloudEvents source and the
	// seed of event ids.
	Connector string
	// Prefix starts every topic name and is Debezium's source.name.
	Prefix string
	// Database is the database name, source.db.
	Database string
	// Outbox, when set, routes an outbox table's inserts to event-store
	// streams instead of change events.
	Outbox *Outbox
}

// Version is source.version in every event.
const Version = "cairn-cdc-1"

// EventType is every change event's ce_type: the type Debezium's
// CloudEvents converter gives PostgreSQL change events.
const EventType = "io.debezium.connector.postgresql.DataChangeEvent"

// Event is one record for a topic: a change event or the tombstone after a
// delete.
type Event struct {
	Topic  string
	Record batch.Record
	// Position is the change's position; a tombstone shares its delete's.
	Position Position
	// Partitioned by key; without a key (a truncate) the event goes to
	// partition 0.
	Keyed bool
}

// TableTopic is a table's topic, <prefix>.<schema>.<table>, with characters
// Kafka topic names may not hold replaced by '_' (as Debezium does).
func TableTopic(prefix, schema, table string) string {
	return prefix + "." + sanitize(schema) + "." + sanitize(table)
}

// MessageTopic is the topic of logical decoding messages, <prefix>.message.
func MessageTopic(prefix string) string { return prefix + ".message" }

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// Events renders a transaction's changes as the events the connector
// appends, in order: each change's event, and after a delete its
// tombstone (so compacted topics forget the key). nowMs is Debezium's
// ts_ms, when the connector processed the change.
func (r *Renderer) Events(n Naming, txn Txn, nowMs int64) ([]Event, error) {
	out := make([]Event, 0, len(txn.Changes))
	for i, c := range txn.Changes {
		pos := Position{CommitLSN: txn.CommitLSN, Index: txn.FirstIndex + uint32(i)}
		if n.Outbox.routes(c.Table) {
			if c.Op != OpCreate && c.Op != OpRead {
				continue
			}
			ev, err := r.outboxEvent(n, txn, c, pos)
			if err != nil {
				return nil, fmt.Errorf("change %d of transaction %d: %w", i, txn.XID, err)
			}
			out = append(out, ev)
			continue
		}
		ev, err := r.event(n, txn, c, pos, nowMs)
		if err != nil {
			return nil, fmt.Errorf("change %d of transaction %d: %w", i, txn.XID, err)
		}
		out = append(out, ev)
		if c.Op == OpDelete && ev.Record.Key != nil {
			tomb := batch.Record{TimestampMs: ev.Record.TimestampMs, Key: ev.Record.Key,
				Headers: []batch.RecordHeader{{Key: HeaderPosition, Value: []byte(pos.String())}}}
			out = append(out, Event{Topic: ev.Topic, Record: tomb, Position: pos, Keyed: true})
		}
	}
	return out, nil
}

func (r *Renderer) event(n Naming, txn Txn, c Change, pos Position, nowMs int64) (Event, error) {
	var (
		topic, schema, table string
		key                  []byte
		body                 bytes.Buffer
	)
	body.WriteByte('{')
	if c.Op == OpMessage {
		if c.Message == nil {
			return Event{}, fmt.Errorf("message change without its message")
		}
		topic = MessageTopic(n.Prefix)
		key = objectOf("prefix", jsonString(c.Message.Prefix))
		body.WriteString(`"message":`)
		body.Write(objectOf("prefix", jsonString(c.Message.Prefix), "content", jsonString(base64.StdEncoding.EncodeToString(c.Message.Content))))
	} else {
		if c.Table == nil {
			return Event{}, fmt.Errorf("op %c without its table", c.Op)
		}
		schema, table = c.Table.Schema, c.Table.Name
		topic = TableTopic(n.Prefix, schema, table)
		var err error
		if c.Op != OpTruncate {
			if key, err = r.key(c); err != nil {
				return Event{}, err
			}
		}
		before, err := r.row(c.Table, c.Before)
		if err != nil {
			return Event{}, fmt.Errorf("before: %w", err)
		}
		after, err := r.row(c.Table, c.After)
		if err != nil {
			return Event{}, fmt.Errorf("after: %w", err)
		}
		body.WriteString(`"before":`)
		body.Write(before)
		body.WriteString(`,"after":`)
		body.Write(after)
	}
	snapshot := "false"
	if txn.Snapshot {
		snapshot = "true"
	}
	source := objectOf(
		"version", jsonString(Version),
		"connector", jsonString("postgresql"),
		"name", jsonString(n.Prefix),
		"ts_ms", json.RawMessage(strconv.FormatInt(txn.CommitTime.UnixMilli(), 10)),
		"snapshot", jsonString(snapshot),
		"db", jsonString(n.Database),
		"schema", jsonString(schema),
		"table", jsonString(table),
		"txId", json.RawMessage(strconv.FormatUint(uint64(txn.XID), 10)),
		"lsn", json.RawMessage(strconv.FormatUint(c.LSN, 10)),
	)
	body.WriteString(`,"source":`)
	body.Write(source)
	body.WriteString(`,"op":`)
	body.Write(jsonString(string(c.Op)))
	body.WriteString(`,"ts_ms":`)
	body.WriteString(strconv.FormatInt(nowMs, 10))
	body.WriteByte('}')

	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("cairn-cdc:"+n.Connector+":"+pos.String()))
	subject := schema + "." + table
	if c.Op == OpMessage {
		subject = c.Message.Prefix
	}
	rec := batch.Record{
		TimestampMs: txn.CommitTime.UnixMilli(),
		Key:         key,
		Value:       body.Bytes(),
		Headers: []batch.RecordHeader{
			{Key: streams.HeaderSpecVersion, Value: []byte("1.0")},
			{Key: streams.HeaderID, Value: []byte(id.String())},
			{Key: streams.HeaderType, Value: []byte(EventType)},
			{Key: streams.HeaderSource, Value: []byte("/cairn/connectors/" + n.Connector)},
			{Key: streams.HeaderSubject, Value: []byte(subject)},
			{Key: streams.HeaderTime, Value: []byte(txn.CommitTime.UTC().Format(time.RFC3339Nano))},
			{Key: streams.HeaderContentType, Value: []byte("application/json")},
			{Key: HeaderPosition, Value: []byte(pos.String())},
		},
	}
	return Event{Topic: topic, Record: rec, Position: pos, Keyed: key != nil}, nil
}

// key is the event key, Debezium's: an object of the primary-key columns,
// nil for a table without a primary key. A delete's old row carries them,
// any other change's new row.
func (r *Renderer) key(c Change) ([]byte, error) {
	row := c.After
	if c.Op == OpDelete {
		row = c.Before
	}
	var kv []any
	for i, col := range c.Table.Columns {
		if !col.Key {
			continue
		}
		if i >= len(row) {
			return nil, fmt.Errorf("key column %s missing from the row", col.Name)
		}
		v, err := r.datum(col, row[i])
		if err != nil {
			return nil, fmt.Errorf("key column %s: %w", col.Name, err)
		}
		kv = append(kv, col.Name, v)
	}
	if kv == nil {
		return nil, nil
	}
	return objectOf(kv...), nil
}

// row renders a tuple as an object in column order; a nil row is JSON null.
func (r *Renderer) row(t *Table, row Row) (json.RawMessage, error) {
	if row == nil {
		return json.RawMessage("null"), nil
	}
	if len(row) != len(t.Columns) {
		return nil, fmt.Errorf("%d values for the %d columns of %s.%s", len(row), len(t.Columns), t.Schema, t.Name)
	}
	kv := make([]any, 0, 2*len(row))
	for i, col := range t.Columns {
		v, err := r.datum(col, row[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", col.Name, err)
		}
		kv = append(kv, col.Name, v)
	}
	return objectOf(kv...), nil
}

func (r *Renderer) datum(col Column, d Datum) (json.RawMessage, error) {
	switch d.Kind {
	case DatumNull:
		return json.RawMessage("null"), nil
	case DatumUnchanged:
		return jsonString(UnavailableValue), nil
	}
	return r.Render(col.TypeOID, col.TypeModifier, d.Text)
}

// objectOf writes a JSON object keeping the order of its keys (Debezium's
// field order is the column order): kv alternates string names and
// json.RawMessage values.
func objectOf(kv ...any) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(kv[i].(string)))
		b.WriteByte(':')
		b.Write(kv[i+1].(json.RawMessage))
	}
	b.WriteByte('}')
	return b.Bytes()
}
