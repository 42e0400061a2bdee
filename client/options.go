package client

import (
	"errors"
	"fmt"
	"slices"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// Filter selects events of a topic; every field set must match.
type Filter struct {
	// EventTypePrefix matches types that start with it.
	EventTypePrefix string
	// EventTypeRegex matches types with an RE2 regular expression.
	EventTypeRegex string
	// StreamPrefix matches streams that start with it.
	StreamPrefix string
}

func (f Filter) proto() *eventstorev1.Filter {
	if f == (Filter{}) {
		return nil
	}
	return &eventstorev1.Filter{EventTypePrefix: f.EventTypePrefix, EventTypeRegex: f.EventTypeRegex, StreamPrefix: f.StreamPrefix}
}

// ReadOption shapes a read or a subscription. Each call says which options
// it takes and refuses the others, so a misplaced option is an error rather
// than silently ignored.
type ReadOption func(*readConfig)

type readConfig struct {
	fromRevision  *uint64
	backwards     bool
	maxCount      uint32
	fromPositions []Position
	fromEnd       bool
	filter        Filter
}

// FromRevision starts a stream read or subscription at revision (forwards:
// the first delivered; backwards: the first going down).
func FromRevision(revision uint64) ReadOption {
	return func(c *readConfig) { c.fromRevision = &revision }
}

// Backwards reads a stream from its end (or FromRevision) towards revision 0.
func Backwards() ReadOption { return func(c *readConfig) { c.backwards = true } }

// MaxCount bounds the events one read returns (a page, for ReadStreamAll);
// 0 is the server's default, 1000.
func MaxCount(n uint32) ReadOption { return func(c *readConfig) { c.maxCount = n } }

// FromPositions starts a topic read or subscription at these next offsets;
// partitions not named start at their first record.
func FromPositions(positions ...Position) ReadOption {
	return func(c *readConfig) { c.fromPositions = append(c.fromPositions, positions...) }
}

// FromEnd subscribes to events appended after the subscription starts.
func FromEnd() ReadOption { return func(c *readConfig) { c.fromEnd = true } }

// WithFilter narrows a topic read or subscription (or a stream
// subscription) to matching events.
func WithFilter(f Filter) ReadOption { return func(c *readConfig) { c.filter = f } }

// option names for readConfig.check.
const (
	optFromRevision  = "FromRevision"
	optBackwards     = "Backwards"
	optMaxCount      = "MaxCount"
	optFromPositions = "FromPositions"
	optFromEnd       = "FromEnd"
	optFilter        = "WithFilter"
)

func newReadConfig(op string, opts []ReadOption, allowed ...string) (readConfig, error) {
	var c readConfig
	for _, o := range opts {
		o(&c)
	}
	set := []struct {
		name  string
		isSet bool
	}{
		{optFromRevision, c.fromRevision != nil},
		{optBackwards, c.backwards},
		{optMaxCount, c.maxCount != 0},
		{optFromPositions, len(c.fromPositions) > 0},
		{optFromEnd, c.fromEnd},
		{optFilter, c.filter != (Filter{})},
	}
	var errs []error
	for _, o := range set {
		if o.isSet && !slices.Contains(allowed, o.name) {
			errs = append(errs, fmt.Errorf("%s does not take option %s", op, o.name))
		}
	}
	if c.fromEnd && (c.fromRevision != nil || len(c.fromPositions) > 0) {
		errs = append(errs, fmt.Errorf("%s: FromEnd excludes FromRevision and FromPositions", op))
	}
	return c, errors.Join(errs...)
}
