package eventstore

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/streams"
)

// Limits on what one append may carry, before anything is written.
const (
	streamNameBytesMax = 1024
	typeBytesMax       = 1024
	metadataEntriesMax = 64
	eventsPerAppendMax = 10_000
	defaultContentType = "application/json"
	specVersion        = "1.0"
)

// source is the CloudEvents source of events appended through the API.
func source(topic string) string { return "/cairn/topics/" + topic }

// reservedHeader reports names the event envelope owns, which metadata may not use.
func reservedHeader(name string) bool {
	return strings.HasPrefix(name, "ce_") || strings.HasPrefix(name, "cairn-") || name == streams.HeaderContentType
}

func validateStream(stream string) error {
	switch {
	case stream == "":
		return fmt.Errorf("stream name is empty")
	case len(stream) > streamNameBytesMax:
		return fmt.Errorf("stream name of %d bytes: at most %d", len(stream), streamNameBytesMax)
	}
	return nil
}

// validateData refuses data that contradicts the content type its writer
// gave: readers decode by the label, so JSON that does not parse would fail
// each of them later instead of the writer now. Empty data is an event
// without data, valid under any type; other types are not inspected. An
// event without a content type is stored as application/json unchecked, as
// it always was, so that writers of opaque data keep working.
func validateData(contentType string, data []byte) error {
	if len(data) == 0 || !isJSON(contentType) {
		return nil
	}
	if !json.Valid(data) {
		return fmt.Errorf("data is not valid JSON, but its content type is %s", contentType)
	}
	return nil
}

// isJSON reports a JSON media type: application/json or a +json suffix
// (application/cloudevents+json), with any parameters.
func isJSON(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// eventRecords turns an append's events into records: key = stream, value =
// data, CloudEvents attributes and metadata as headers. The first record
// carries the expected revision, which the partition checks. Events without
// an id get a random (version 4) UUID read from ids.
func eventRecords(topic, stream string, expected streams.Expected, events []*eventstorev1.Event, now time.Time, ids io.Reader) ([]batch.Record, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("an append needs at least one event")
	}
	if len(events) > eventsPerAppendMax {
		return nil, fmt.Errorf("%d events in one append: at most %d", len(events), eventsPerAppendMax)
	}
	ts := now.UTC().Format(time.RFC3339Nano)
	recs := make([]batch.Record, 0, len(events))
	for i, ev := range events {
		id := ev.GetId()
		if id == "" {
			generated, err := uuid.NewRandomFromReader(ids)
			if err != nil {
				return nil, fmt.Errorf("event %d: make an id: %w", i, err)
			}
			id = generated.String()
		} else if _, err := uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("event %d: id %q is not a UUID", i, id)
		}
		if ev.GetType() == "" || len(ev.GetType()) > typeBytesMax {
			return nil, fmt.Errorf("event %d: type must be 1 to %d bytes", i, typeBytesMax)
		}
		if len(ev.GetMetadata()) > metadataEntriesMax {
			return nil, fmt.Errorf("event %d: %d metadata entries: at most %d", i, len(ev.GetMetadata()), metadataEntriesMax)
		}
		contentType := ev.GetContentType()
		if contentType == "" {
			contentType = defaultContentType
		}
		headers := make([]batch.RecordHeader, 0, 8+len(ev.GetMetadata()))
		if i == 0 {
			headers = append(headers, batch.RecordHeader{Key: streams.HeaderExpectedRevision, Value: []byte(expected.String())})
		}
		headers = append(headers,
			batch.RecordHeader{Key: streams.HeaderSpecVersion, Value: []byte(specVersion)},
			batch.RecordHeader{Key: streams.HeaderID, Value: []byte(id)},
			batch.RecordHeader{Key: streams.HeaderType, Value: []byte(ev.GetType())},
			batch.RecordHeader{Key: streams.HeaderSource, Value: []byte(source(topic))},
			batch.RecordHeader{Key: streams.HeaderSubject, Value: []byte(stream)},
			batch.RecordHeader{Key: streams.HeaderTime, Value: []byte(ts)},
			batch.RecordHeader{Key: streams.HeaderContentType, Value: []byte(contentType)},
		)
		for _, k := range sortedKeys(ev.GetMetadata()) {
			if k == "" || reservedHeader(k) {
				return nil, fmt.Errorf("event %d: metadata name %q is reserved (ce_*, cairn-*, content-type)", i, k)
			}
			headers = append(headers, batch.RecordHeader{Key: k, Value: []byte(ev.GetMetadata()[k])})
		}
		data := ev.GetData()
		if err := validateData(ev.GetContentType(), data); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if data == nil {
			data = []byte{} // an event is never a Kafka tombstone
		}
		recs = append(recs, batch.Record{TimestampMs: now.UnixMilli(), Key: []byte(stream), Value: data, Headers: headers})
	}
	return recs, nil
}

// opRecord is a stream operation (metadata, deletion) as a record.
func opRecord(stream, op string, value []byte, expected *streams.Expected, now time.Time) batch.Record {
	headers := []batch.RecordHeader{{Key: streams.HeaderStreamOp, Value: []byte(op)}}
	if expected != nil {
		headers = append(headers, batch.RecordHeader{Key: streams.HeaderExpectedRevision, Value: []byte(expected.String())})
	}
	if value == nil {
		value = []byte{}
	}
	return batch.Record{TimestampMs: now.UnixMilli(), Key: []byte(stream), Value: value, Headers: headers}
}

// recordedEvent is how a stored record looks to the API. Records from Kafka
// producers lack some attributes: their type is empty and their time is the
// record's timestamp.
func recordedEvent(topic string, partition int32, rev int64, r batch.Record) *eventstorev1.RecordedEvent {
	ev := &eventstorev1.RecordedEvent{
		Topic:    topic,
		Stream:   string(r.Key),
		Revision: uint64(rev),
		Position: &eventstorev1.Position{Partition: partition, Offset: r.Offset},
		Data:     r.Value,
		Time:     timestamppb.New(time.UnixMilli(r.TimestampMs)),
	}
	for _, h := range r.Headers {
		switch h.Key {
		case streams.HeaderID:
			ev.Id = string(h.Value)
		case streams.HeaderType:
			ev.Type = string(h.Value)
		case streams.HeaderSource:
			ev.Source = string(h.Value)
		case streams.HeaderContentType:
			ev.ContentType = string(h.Value)
		case streams.HeaderTime:
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				ev.Time = timestamppb.New(t)
			}
		default:
			if !reservedHeader(h.Key) {
				if ev.Metadata == nil {
					ev.Metadata = map[string]string{}
				}
				ev.Metadata[h.Key] = string(h.Value)
			}
		}
	}
	return ev
}

func sortedKeys(m map[string]string) []string {
	// Deterministic header order keeps identical appends byte-identical.
	return slices.Sorted(maps.Keys(m))
}
