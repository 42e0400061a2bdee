package cdc

import (
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
	XID       uint32
	CommitLSN uint64
	// LastCommitLSN is the commit LSN of the transaction the connector
	// processed before this one (Debezium's lastCommitLsn, the first of
	// source.sequence); 0 when there is none (snapshot rows).
	LastCommitLSN uint64
	CommitTime    time.Time
	Snapshot      bool // rows read by the initial snapshot
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
		err                  error
	)
	// One buffer per event, appended to in place: the envelope is most of
	// the connector's work per change, so no intermediate values.
	body := make([]byte, 0, 384)
	body = append(body, '{')
	if c.Op == OpMessage {
		if c.Message == nil {
			return Event{}, fmt.Errorf("message change without its message")
		}
		topic = MessageTopic(n.Prefix)
		key = appendJSONString(append(make([]byte, 0, len(c.Message.Prefix)+13), `{"prefix":`...), c.Message.Prefix)
		key = append(key, '}')
		body = append(body, `"message":{"prefix":`...)
		body = appendJSONString(body, c.Message.Prefix)
		body = append(body, `,"content":`...)
		body = appendJSONString(body, base64.StdEncoding.EncodeToString(c.Message.Content))
		body = append(body, '}')
	} else {
		if c.Table == nil {
			return Event{}, fmt.Errorf("op %c without its table", c.Op)
		}
		schema, table = c.Table.Schema, c.Table.Name
		topic = TableTopic(n.Prefix, schema, table)
		if c.Op != OpTruncate {
			if key, err = r.key(c); err != nil {
				return Event{}, err
			}
		}
		body = append(body, `"before":`...)
		if body, err = r.appendRow(body, c.Table, c.Before); err != nil {
			return Event{}, fmt.Errorf("before: %w", err)
		}
		body = append(body, `,"after":`...)
		if body, err = r.appendRow(body, c.Table, c.After); err != nil {
			return Event{}, fmt.Errorf("after: %w", err)
		}
	}
	snapshot := "false"
	if txn.Snapshot {
		snapshot = "true"
	}
	body = append(body, `,"source":{"version":"`+Version+`","connector":"postgresql","name":`...)
	body = appendJSONString(body, n.Prefix)
	body = append(body, `,"ts_ms":`...)
	body = strconv.AppendInt(body, txn.CommitTime.UnixMilli(), 10)
	body = append(body, `,"snapshot":"`...)
	body = append(body, snapshot...)
	body = append(body, `","db":`...)
	body = appendJSONString(body, n.Database)
	// Debezium's sequence: a JSON array of the last commit's LSN and the
	// change's, as strings, itself in a string.
	body = append(body, `,"sequence":"[`...)
	if txn.LastCommitLSN == 0 {
		body = append(body, "null"...)
	} else {
		body = append(body, `\"`...)
		body = strconv.AppendUint(body, txn.LastCommitLSN, 10)
		body = append(body, `\"`...)
	}
	body = append(body, `,\"`...)
	body = strconv.AppendUint(body, c.LSN, 10)
	body = append(body, `\"]"`...)
	body = append(body, `,"schema":`...)
	body = appendJSONString(body, schema)
	body = append(body, `,"table":`...)
	body = appendJSONString(body, table)
	body = append(body, `,"txId":`...)
	body = strconv.AppendUint(body, uint64(txn.XID), 10)
	body = append(body, `,"lsn":`...)
	body = strconv.AppendUint(body, c.LSN, 10)
	body = append(body, `},"op":"`...)
	body = append(body, byte(c.Op))
	body = append(body, `","ts_ms":`...)
	body = strconv.AppendInt(body, nowMs, 10)
	body = append(body, '}')

	posText := []byte(pos.String())
	id := uuid.NewSHA1(uuid.NameSpaceURL, append([]byte("cairn-cdc:"+n.Connector+":"), posText...))
	subject := schema + "." + table
	if c.Op == OpMessage {
		subject = c.Message.Prefix
	}
	rec := batch.Record{
		TimestampMs: txn.CommitTime.UnixMilli(),
		Key:         key,
		Value:       body,
		Headers: []batch.RecordHeader{
			{Key: streams.HeaderSpecVersion, Value: specVersion},
			{Key: streams.HeaderID, Value: []byte(id.String())},
			{Key: streams.HeaderType, Value: eventType},
			{Key: streams.HeaderSource, Value: []byte("/cairn/connectors/" + n.Connector)},
			{Key: streams.HeaderSubject, Value: []byte(subject)},
			{Key: streams.HeaderTime, Value: []byte(txn.CommitTime.UTC().Format(time.RFC3339Nano))},
			{Key: streams.HeaderContentType, Value: contentTypeJSON},
			{Key: HeaderPosition, Value: posText},
		},
	}
	return Event{Topic: topic, Record: rec, Position: pos, Keyed: key != nil}, nil
}

// Header values every event shares. Records are encoded, never changed,
// so they may share these.
var (
	specVersion     = []byte("1.0")
	eventType       = []byte(EventType)
	contentTypeJSON = []byte("application/json")
)

// key is the event key, Debezium's: an object of the primary-key columns,
// nil for a table without a primary key. A delete's old row carries them,
// any other change's new row.
func (r *Renderer) key(c Change) ([]byte, error) {
	row := c.After
	if c.Op == OpDelete {
		row = c.Before
	}
	var out []byte
	for i, col := range c.Table.Columns {
		if !col.Key {
			continue
		}
		if i >= len(row) {
			return nil, fmt.Errorf("key column %s missing from the row", col.Name)
		}
		if out == nil {
			out = append(make([]byte, 0, 32), '{')
		} else {
			out = append(out, ',')
		}
		out = appendJSONString(out, col.Name)
		out = append(out, ':')
		v, err := r.datum(col, row[i])
		if err != nil {
			return nil, fmt.Errorf("key column %s: %w", col.Name, err)
		}
		out = append(out, v...)
	}
	if out == nil {
		return nil, nil
	}
	return append(out, '}'), nil
}

// appendRow appends a tuple as an object in column order (Debezium's field
// order); a nil row is JSON null.
func (r *Renderer) appendRow(dst []byte, t *Table, row Row) ([]byte, error) {
	if row == nil {
		return append(dst, "null"...), nil
	}
	if len(row) != len(t.Columns) {
		return nil, fmt.Errorf("%d values for the %d columns of %s.%s", len(row), len(t.Columns), t.Schema, t.Name)
	}
	dst = append(dst, '{')
	for i, col := range t.Columns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, col.Name)
		dst = append(dst, ':')
		v, err := r.datum(col, row[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", col.Name, err)
		}
		dst = append(dst, v...)
	}
	return append(dst, '}'), nil
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
