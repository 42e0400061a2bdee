package client

import (
	"fmt"
	"maps"
	"time"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// EventData is an event to append.
type EventData struct {
	// ID is a UUID. Empty gets a random one before the first attempt, so the
	// client's own retries of an append are recognised as retries. Set it
	// yourself to make your retries (after a crash, say) idempotent too.
	ID string
	// Type names what happened, e.g. OrderPlaced. Required.
	Type string
	Data []byte
	// ContentType of Data; empty is application/json.
	ContentType string
	// Metadata becomes record headers of the same names. Names starting
	// with ce_ or cairn- and content-type are reserved.
	Metadata map[string]string
}

// Position is a place in a topic: a partition and the offset of a record
// in it. Where it says where to continue, Offset is the next offset to read.
type Position struct {
	Partition int32
	Offset    int64
}

func (p Position) String() string { return fmt.Sprintf("%d@%d", p.Partition, p.Offset) }

// RecordedEvent is an event as the store keeps it.
type RecordedEvent struct {
	Topic  string
	Stream string
	// Revision is the event's place in its stream, from 0.
	Revision uint64
	// Position is the event's record in the topic.
	Position    Position
	ID          string
	Type        string
	Data        []byte
	ContentType string
	Metadata    map[string]string
	// Time is when the event was appended (its ce_time), or the record's
	// timestamp for records from plain Kafka producers.
	Time time.Time
	// Source is the CloudEvents source (ce_source).
	Source string
}

// AppendResult says where an append's events went.
type AppendResult struct {
	FirstRevision uint64
	// LastRevision is the stream's revision after the append: Exact of it
	// is the expected revision of the next append.
	LastRevision uint64
	// Position is the last event's record.
	Position Position
	// Duplicate is true when every event id was already in the stream at
	// these revisions, so nothing was written: a retry of an append that
	// had succeeded.
	Duplicate bool
}

type expectedKind uint8

const (
	expectAny expectedKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Expected is the state a stream must be in for a write to happen: Any,
// NoStream, StreamExists or Exact(revision). The zero value is Any.
type Expected struct {
	kind     expectedKind
	revision uint64
}

var (
	// Any does no check.
	Any = Expected{kind: expectAny}
	// NoStream expects a stream with no event yet (or soft-deleted with
	// none since).
	NoStream = Expected{kind: expectNoStream}
	// StreamExists expects a stream with at least one event.
	StreamExists = Expected{kind: expectStreamExists}
)

// Exact expects the revision of the stream's last event to be revision.
func Exact(revision uint64) Expected { return Expected{kind: expectExact, revision: revision} }

// ExpectedAfter is the expectation of a writer that has seen a stream up
// to lastRevision (-1: no event): NoStream or Exact(lastRevision).
func ExpectedAfter(lastRevision int64) Expected {
	if lastRevision < 0 {
		return NoStream
	}
	return Exact(uint64(lastRevision))
}

// Revision returns the revision Exact expects; ok is false for the other kinds.
func (e Expected) Revision() (revision uint64, ok bool) {
	return e.revision, e.kind == expectExact
}

func (e Expected) String() string {
	switch e.kind {
	case expectNoStream:
		return "no-stream"
	case expectStreamExists:
		return "stream-exists"
	case expectExact:
		return fmt.Sprintf("%d", e.revision)
	}
	return "any"
}

func (e Expected) proto() *eventstorev1.ExpectedRevision {
	switch e.kind {
	case expectNoStream:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	case expectStreamExists:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_StreamExists{StreamExists: true}}
	case expectExact:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: e.revision}}
	}
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Any{Any: true}}
}

func expectedFromProto(p *eventstorev1.ExpectedRevision) Expected {
	switch k := p.GetKind().(type) {
	case *eventstorev1.ExpectedRevision_NoStream:
		if k.NoStream {
			return NoStream
		}
	case *eventstorev1.ExpectedRevision_StreamExists:
		if k.StreamExists {
			return StreamExists
		}
	case *eventstorev1.ExpectedRevision_Exact:
		return Exact(k.Exact)
	}
	return Any
}

func positionFromProto(p *eventstorev1.Position) Position {
	return Position{Partition: p.GetPartition(), Offset: p.GetOffset()}
}

func positionsFromProto(ps []*eventstorev1.Position) []Position {
	out := make([]Position, len(ps))
	for i, p := range ps {
		out[i] = positionFromProto(p)
	}
	return out
}

func positionsProto(ps []Position) []*eventstorev1.Position {
	out := make([]*eventstorev1.Position, len(ps))
	for i, p := range ps {
		out[i] = &eventstorev1.Position{Partition: p.Partition, Offset: p.Offset}
	}
	return out
}

func eventFromProto(e *eventstorev1.RecordedEvent) RecordedEvent {
	ev := RecordedEvent{
		Topic:       e.GetTopic(),
		Stream:      e.GetStream(),
		Revision:    e.GetRevision(),
		Position:    positionFromProto(e.GetPosition()),
		ID:          e.GetId(),
		Type:        e.GetType(),
		Data:        e.GetData(),
		ContentType: e.GetContentType(),
		Metadata:    maps.Clone(e.GetMetadata()),
		Source:      e.GetSource(),
	}
	if e.GetTime() != nil {
		ev.Time = e.GetTime().AsTime()
	}
	return ev
}

func eventsFromProto(es []*eventstorev1.RecordedEvent) []RecordedEvent {
	out := make([]RecordedEvent, len(es))
	for i, e := range es {
		out[i] = eventFromProto(e)
	}
	return out
}

// lastRevision turns an optional revision into the int64 form, -1 for none.
func lastRevision(v *uint64) int64 {
	if v == nil {
		return -1
	}
	return int64(*v)
}
