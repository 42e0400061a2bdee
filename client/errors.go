package client

import (
	"errors"
	"fmt"

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

// apiError maps an error from a call about topic (and stream, when not
// empty) to the package's errors, keeping the original in the chain. The
// server names the cause in an ErrorInfo detail.
func apiError(op, topic, stream string, err error) error {
	where := topic
	if stream != "" {
		where = topic + "/" + stream
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s %s: %w", op, where, err)
	}
	if wrong := wrongExpected(topic, ce); wrong != nil {
		return wrong
	}
	switch errorReason(ce) {
	case "STREAM_DELETED":
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrStreamDeleted, err)
	case "STREAM_NOT_FOUND":
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrStreamNotFound, err)
	case "TOPIC_NOT_FOUND":
		if stream != "" {
			return fmt.Errorf("%s %s: %w: %w: %w", op, where, ErrStreamNotFound, ErrTopicNotFound, err)
		}
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrTopicNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, where, err)
}

// errorReason is the reason of ce's ErrorInfo detail, "" when it has none.
func errorReason(ce *connect.Error) string {
	for _, d := range ce.Details() {
		msg, err := d.Value()
		if err != nil {
			continue // a detail type this client does not know
		}
		if info, ok := msg.(*eventstorev1.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
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
