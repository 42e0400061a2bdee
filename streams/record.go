package streams

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/cairnlog/cairn/batch"
)

// Header names. The ce_* headers follow the binary mode of the CloudEvents
// Kafka protocol binding, so any Kafka consumer can read an event's
// attributes.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderSpecVersion = "ce_specversion"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"

	// HeaderExpectedRevision on a record asks for the revision check before
	// it: "any", "no-stream", "exists" or a revision number. Records
	// carrying it are event-store appends and get idempotent retries.
	HeaderExpectedRevision = "cairn-expected-revision"
	// HeaderStreamOp marks a record that is not an event but an operation
	// on its stream (OpMetadata, OpDelete, OpHardDelete, OpCleaned).
	HeaderStreamOp = "cairn-stream-op"
	// HeaderRevision on a cleaned marker gives the revision of the last
	// event the cleaner removed in its place.
	HeaderRevision = "cairn-revision"
)

// Stream operations, the values of HeaderStreamOp.
const (
	OpMetadata   = "metadata"
	OpDelete     = "delete"
	OpHardDelete = "hard-delete"
	OpCleaned    = "cleaned"
)

// Metadata bounds which events of a stream are kept. A negative field is unset.
type Metadata struct {
	MaxCount       int64 `json:"max_count"`
	MaxAgeMs       int64 `json:"max_age_ms"`
	TruncateBefore int64 `json:"truncate_before"`
}

// NoMetadata has every bound unset.
var NoMetadata = Metadata{MaxCount: -1, MaxAgeMs: -1, TruncateBefore: -1}

// Validate reports a bound that makes no sense.
func (m Metadata) Validate() error {
	if m.MaxCount < -1 || m.MaxAgeMs < -1 || m.TruncateBefore < -1 {
		return fmt.Errorf("stream metadata: bounds must be non-negative or unset")
	}
	return nil
}

// EncodeMetadata is the value of an OpMetadata record.
func EncodeMetadata(m Metadata) []byte {
	b, _ := json.Marshal(m) // a struct of int64s always marshals
	return b
}

// DecodeMetadata parses the value of an OpMetadata record; fields it lacks stay unset.
func DecodeMetadata(b []byte) (Metadata, error) {
	m := NoMetadata
	if err := json.Unmarshal(b, &m); err != nil {
		return NoMetadata, fmt.Errorf("stream metadata record: %w", err)
	}
	return m, m.Validate()
}

// Header returns the value of the record's first header named name.
func Header(r batch.Record, name string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// Kind is what a record means to its stream.
type Kind int

const (
	// KindNone: no key, so no stream.
	KindNone Kind = iota
	// KindEvent: the next event of its stream.
	KindEvent
	// KindOp: a metadata, delete or cleaned record (see Op).
	KindOp
)

// Op is a decoded stream operation record.
type Op struct {
	Name     string
	Metadata Metadata // OpMetadata
	Revision int64    // OpCleaned: the last removed event's revision
}

// Classify says what r is. Malformed operation records are errors, which
// Validate reports before they are written and Apply reports if they ever
// are found in a log.
func Classify(r batch.Record) (Kind, Op, error) {
	if r.Key == nil {
		return KindNone, Op{}, nil
	}
	name, ok := Header(r, HeaderStreamOp)
	if !ok {
		return KindEvent, Op{}, nil
	}
	op := Op{Name: string(name), Metadata: NoMetadata, Revision: -1}
	switch op.Name {
	case OpMetadata:
		m, err := DecodeMetadata(r.Value)
		if err != nil {
			return KindOp, op, err
		}
		op.Metadata = m
	case OpDelete, OpHardDelete:
	case OpCleaned:
		v, ok := Header(r, HeaderRevision)
		if !ok {
			return KindOp, op, fmt.Errorf("cleaned marker without %s header", HeaderRevision)
		}
		rev, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || rev < 0 {
			return KindOp, op, fmt.Errorf("cleaned marker: bad revision %q", v)
		}
		op.Revision = rev
	default:
		return KindOp, op, fmt.Errorf("unknown %s %q", HeaderStreamOp, name)
	}
	return KindOp, op, nil
}
