package cdc

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// Outbox routes an outbox table's inserts to event-store streams, as
// Debezium's outbox event router does to topics: a service writes its
// state and an outbox row in one database transaction, and the row's event
// appears once in stream <aggregatetype>/<aggregateid> of Topic (a topic
// with cleanup.policy=stream), with the event type from the type column,
// the event id from the id column (a UUID, or a name-based UUID derived
// from it) and the data from the payload column. The table's updates and
// deletes are ignored (services usually delete the rows they wrote), and
// the table gets no change events of its own.
type Outbox struct {
	Schema, Table string // the outbox table
	Topic         string // the event-store topic
	// The columns; Debezium's defaults when empty.
	IDColumn, AggregateTypeColumn, AggregateIDColumn, TypeColumn, PayloadColumn string
}

// WithDefaults names Debezium's default columns where unset.
func (o Outbox) WithDefaults() Outbox {
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&o.Schema, "public")
	set(&o.IDColumn, "id")
	set(&o.AggregateTypeColumn, "aggregatetype")
	set(&o.AggregateIDColumn, "aggregateid")
	set(&o.TypeColumn, "type")
	set(&o.PayloadColumn, "payload")
	return o
}

func (o *Outbox) routes(t *Table) bool {
	return o != nil && t != nil && t.Schema == o.Schema && t.Name == o.Table
}

// outboxEvent renders an outbox row as an event-store event: key = the
// stream, value = the payload, the event-store headers (expected revision
// "any", so the partition recognises a replayed id as a retry) and the
// position.
func (r *Renderer) outboxEvent(n Naming, txn Txn, c Change, pos Position) (Event, error) {
	o := n.Outbox
	values := map[string]string{}
	for i, col := range c.Table.Columns {
		if i < len(c.After) && c.After[i].Kind == DatumText {
			values[col.Name] = string(c.After[i].Text)
		}
	}
	need := func(col string) (string, error) {
		v, ok := values[col]
		if !ok || v == "" {
			return "", fmt.Errorf("outbox row without %s", col)
		}
		return v, nil
	}
	id, err := need(o.IDColumn)
	if err != nil {
		return Event{}, err
	}
	aggType, err := need(o.AggregateTypeColumn)
	if err != nil {
		return Event{}, err
	}
	aggID, err := need(o.AggregateIDColumn)
	if err != nil {
		return Event{}, err
	}
	typ, err := need(o.TypeColumn)
	if err != nil {
		return Event{}, err
	}
	eventID, err := uuid.Parse(id)
	if err != nil {
		eventID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("cairn-outbox:"+n.Connector+":"+id))
	}
	stream := aggType + "/" + aggID
	var payload []byte
	if v, ok := values[o.PayloadColumn]; ok {
		payload = []byte(v)
	}
	if payload == nil {
		payload = []byte{}
	}
	rec := batch.Record{
		TimestampMs: txn.CommitTime.UnixMilli(),
		Key:         []byte(stream),
		Value:       payload,
		Headers: []batch.RecordHeader{
			{Key: streams.HeaderExpectedRevision, Value: []byte(streams.Any.String())},
			{Key: streams.HeaderSpecVersion, Value: []byte("1.0")},
			{Key: streams.HeaderID, Value: []byte(eventID.String())},
			{Key: streams.HeaderType, Value: []byte(typ)},
			{Key: streams.HeaderSource, Value: []byte("/cairn/topics/" + o.Topic)},
			{Key: streams.HeaderSubject, Value: []byte(stream)},
			{Key: streams.HeaderTime, Value: []byte(txn.CommitTime.UTC().Format(time.RFC3339Nano))},
			{Key: streams.HeaderContentType, Value: []byte("application/json")},
			{Key: HeaderPosition, Value: []byte(pos.String())},
		},
	}
	if strings.TrimSpace(stream) == "/" {
		return Event{}, fmt.Errorf("outbox row with an empty stream")
	}
	return Event{Topic: o.Topic, Record: rec, Position: pos, Keyed: true}, nil
}
