package client

import (
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// Sentinels for the outcomes a caller handles. The connect error the
// server sent stays in the chain too (errors.As with *connect.Error).
var (
	// ErrWrongExpectedRevision is wrapped by *WrongExpectedRevisionError.
	ErrWrongExpectedRevision = errors.New("wrong expected revision")
	// ErrStreamNotFound: the stream (or its topic) has never been written.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrTopicNotFound: the topic does not exist. Errors that wrap it for a
	// stream operation wrap ErrStreamNotFound too.
	ErrTopicNotFound = errors.New("topic not found")
	// ErrStreamDeleted: the stream was hard-deleted; it can never be read
	// or written again.
	ErrStreamDeleted = errors.New("stream deleted for good")
)

// WrongExpectedRevisionError is an append (or delete) refused because the
// stream was not in the expected state. Nothing of it was written.
type WrongExpectedRevisionError struct {
	Topic    string
	Stream   string
	Expected Expected
	// Actual is the stream's last revision, -1 when it has no event.
	Actual int64

	cause error
}

func (e *WrongExpectedRevisionError) Error() string {
	actual := "it has no events"
	if e.Actual >= 0 {
		actual = fmt.Sprintf("its revision is %d", e.Actual)
	}
	return fmt.Sprintf("stream %s/%s: expected revision %s, but %s", e.Topic, e.Stream, e.Expected, actual)
}

// Unwrap gives ErrWrongExpectedRevision and the server's connect error.
func (e *WrongExpectedRevisionError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrWrongExpectedRevision}
	}
	return []error{ErrWrongExpectedRevision, e.cause}
}

// The server says these conditions only in its messages; the API has no
// error detail for them (yet), so these fragments are what the client
// recognises. eventstore/read.go, subscribe.go and streams/expected.go
// word them.
const (
	deletedForGoodText = "deleted for good"
	topicMissingText   = "does not exist"
)

// apiError maps an error from a call about topic (and stream, when not
// empty) to the package's errors, keeping the original in the chain.
func apiError(op, topic, stream string, err error) error {
	where := topic
	if stream != "" {
		where = topic + "/" + stream
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s %s: %w", op, where, err)
	}
	switch ce.Code() {
	case connect.CodeFailedPrecondition:
		if wrong := wrongExpected(topic, ce); wrong != nil {
			return wrong
		}
		if strings.Contains(ce.Message(), deletedForGoodText) {
			return fmt.Errorf("%s %s: %w: %w", op, where, ErrStreamDeleted, err)
		}
	case connect.CodeNotFound:
		switch {
		case strings.Contains(ce.Message(), deletedForGoodText):
			return fmt.Errorf("%s %s: %w: %w", op, where, ErrStreamDeleted, err)
		case strings.Contains(ce.Message(), topicMissingText) && stream != "":
			return fmt.Errorf("%s %s: %w: %w: %w", op, where, ErrStreamNotFound, ErrTopicNotFound, err)
		case strings.Contains(ce.Message(), topicMissingText):
			return fmt.Errorf("%s %s: %w: %w", op, where, ErrTopicNotFound, err)
		case stream != "":
			return fmt.Errorf("%s %s: %w: %w", op, where, ErrStreamNotFound, err)
		}
	}
	return fmt.Errorf("%s %s: %w", op, where, err)
}

// wrongExpected decodes the WrongExpectedRevision detail, nil when ce has none.
func wrongExpected(topic string, ce *connect.Error) *WrongExpectedRevisionError {
	for _, d := range ce.Details() {
		msg, err := d.Value()
		if err != nil {
			continue // a detail type this client does not know
		}
		detail, ok := msg.(*eventstorev1.WrongExpectedRevision)
		if !ok {
			continue
		}
		actual := int64(-1)
		if detail.ActualRevision != nil {
			actual = int64(detail.GetActualRevision())
		}
		return &WrongExpectedRevisionError{
			Topic:    topic,
			Stream:   detail.GetStream(),
			Expected: expectedFromProto(detail.GetExpected()),
			Actual:   actual,
			cause:    ce,
		}
	}
	return nil
}

// retryable reports failures worth another attempt: the server was
// unreachable or going away. Every call the client retries is idempotent
// (appends carry their event ids from the first attempt).
func retryable(err error) bool {
	return connect.CodeOf(err) == connect.CodeUnavailable
}
