package streams

import (
	"errors"
	"fmt"
	"strconv"
)

// ExpectedKind is the kind of check an append asks for.
type ExpectedKind int

const (
	ExpectAny ExpectedKind = iota
	ExpectNoStream
	ExpectExists
	ExpectExact
)

// Expected is the state a stream must be in for an append to happen.
type Expected struct {
	Kind     ExpectedKind
	Revision int64 // ExpectExact only
}

// Any is the expectation that always holds.
var Any = Expected{Kind: ExpectAny}

// Exact expects the stream's last revision to be rev.
func Exact(rev int64) Expected { return Expected{Kind: ExpectExact, Revision: rev} }

// ParseExpected parses a HeaderExpectedRevision value or CLI flag.
func ParseExpected(s string) (Expected, error) {
	switch s {
	case "any":
		return Any, nil
	case "no-stream", "no_stream":
		return Expected{Kind: ExpectNoStream}, nil
	case "exists", "stream-exists", "stream_exists":
		return Expected{Kind: ExpectExists}, nil
	}
	rev, err := strconv.ParseInt(s, 10, 64)
	if err != nil || rev < 0 {
		return Expected{}, fmt.Errorf("expected revision %q: want any, no-stream, exists or a revision number", s)
	}
	return Exact(rev), nil
}

// String is the form ParseExpected reads.
func (e Expected) String() string {
	switch e.Kind {
	case ExpectNoStream:
		return "no-stream"
	case ExpectExists:
		return "exists"
	case ExpectExact:
		return strconv.FormatInt(e.Revision, 10)
	}
	return "any"
}

// holds reports whether a stream in state st meets e.
func (e Expected) holds(st State) bool {
	switch e.Kind {
	case ExpectNoStream:
		return !st.Exists()
	case ExpectExists:
		return st.Exists()
	case ExpectExact:
		return st.LastRevision == e.Revision
	}
	return true
}

// ErrWrongExpectedRevision is wrapped by *WrongExpectedRevisionError.
var ErrWrongExpectedRevision = errors.New("wrong expected revision")

// ErrStreamDeleted: the stream was hard-deleted and can never be written again.
var ErrStreamDeleted = errors.New("stream is deleted for good")

// ErrInvalid: an event-store record is malformed or misused.
var ErrInvalid = errors.New("invalid stream record")

// WrongExpectedRevisionError says which stream failed its check and where it is.
type WrongExpectedRevisionError struct {
	Stream   string
	Expected Expected
	// Actual is the stream's last revision, -1 when it has no event.
	Actual int64
}

func (e *WrongExpectedRevisionError) Error() string {
	actual := "it has no events"
	if e.Actual >= 0 {
		actual = fmt.Sprintf("its revision is %d", e.Actual)
	}
	return fmt.Sprintf("stream %q: expected revision %s, but %s", e.Stream, e.Expected, actual)
}

func (e *WrongExpectedRevisionError) Unwrap() error { return ErrWrongExpectedRevision }

// DuplicateError reports an append whose events are all already in their
// stream, at these revisions: a retry, answered with the original result.
type DuplicateError struct {
	Stream      string
	First, Last int64
	FirstOffset int64
	LastOffset  int64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("stream %q: events already appended at revisions %d-%d", e.Stream, e.First, e.Last)
}
