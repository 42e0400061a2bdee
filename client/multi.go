package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// AppendPart is one stream's part of an AppendMulti: events to append to
// Stream in Topic if the stream is as Expected.
type AppendPart struct {
	Topic    string
	Stream   string
	Expected Expected
	Events   []EventData
}

// AppendMultiError is an AppendMulti refused because some parts' streams
// were not as expected. Nothing of any part was written.
type AppendMultiError struct {
	// Mismatches lists each part whose expectation failed, in the call's
	// order.
	Mismatches []PartMismatch

	cause error
}

// PartMismatch is one failed part: its index among the call's parts and
// what its stream was.
type PartMismatch struct {
	Part int
	*WrongExpectedRevisionError
}

func (e *AppendMultiError) Error() string {
	var b strings.Builder
	b.WriteString("append-multi: nothing written:")
	for i, m := range e.Mismatches {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " part %d: %s", m.Part, m.WrongExpectedRevisionError)
	}
	return b.String()
}

// Unwrap gives ErrWrongExpectedRevision and the server's connect error.
func (e *AppendMultiError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrWrongExpectedRevision}
	}
	return []error{ErrWrongExpectedRevision, e.cause}
}

// AppendMulti appends to several streams, of any topics, atomically: every
// part is written at its expected revision, or none is, and readers never
// see some parts without the others. It returns each part's result in the
// order given, once all are durable. Parts whose streams were not as
// expected give an *AppendMultiError naming each. Event ids are fixed
// before the first attempt, so a retry after a lost answer is recognised
// (every part Duplicate).
func (c *Client) AppendMulti(ctx context.Context, parts ...AppendPart) ([]AppendResult, error) {
	if len(parts) == 0 {
		return nil, errors.New("append-multi: no parts")
	}
	req := &eventstorev1.AppendMultiRequest{Parts: make([]*eventstorev1.AppendPart, len(parts))}
	for i, p := range parts {
		if len(p.Events) == 0 {
			return nil, fmt.Errorf("append-multi: part %d (%s/%s): no events", i, p.Topic, p.Stream)
		}
		pp := &eventstorev1.AppendPart{Topic: p.Topic, Stream: p.Stream, ExpectedRevision: p.Expected.proto(),
			Events: make([]*eventstorev1.Event, len(p.Events))}
		for j, ev := range p.Events {
			id := ev.ID
			if id == "" {
				id = uuid.NewString()
			}
			pp.Events[j] = &eventstorev1.Event{Id: id, Type: ev.Type, Data: ev.Data, ContentType: ev.ContentType, Metadata: ev.Metadata}
		}
		req.Parts[i] = pp
	}
	var resp *connect.Response[eventstorev1.AppendMultiResponse]
	err := c.retry(ctx, func() (err error) {
		resp, err = c.rpc.AppendMulti(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil {
		return nil, multiError(err)
	}
	if got := len(resp.Msg.GetParts()); got != len(parts) {
		return nil, fmt.Errorf("append-multi: %d parts answered for %d", got, len(parts))
	}
	out := make([]AppendResult, len(parts))
	for i, m := range resp.Msg.GetParts() {
		out[i] = AppendResult{FirstRevision: m.GetFirstRevision(), LastRevision: m.GetLastRevision(),
			Position: positionFromProto(m.GetPosition()), Duplicate: m.GetDuplicate()}
	}
	return out, nil
}

// multiError decodes the WrongExpectedRevisions detail of an AppendMulti's
// error into an *AppendMultiError.
func multiError(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("append-multi: %w", err)
	}
	for _, d := range ce.Details() {
		msg, derr := d.Value()
		if derr != nil {
			continue // a detail type this client does not know
		}
		detail, ok := msg.(*eventstorev1.WrongExpectedRevisions)
		if !ok {
			continue
		}
		e := &AppendMultiError{cause: ce}
		for _, p := range detail.GetParts() {
			w := p.GetMismatch()
			actual := int64(-1)
			if w.ActualRevision != nil {
				actual = int64(w.GetActualRevision())
			}
			e.Mismatches = append(e.Mismatches, PartMismatch{Part: int(p.GetPart()), WrongExpectedRevisionError: &WrongExpectedRevisionError{
				Topic: p.GetTopic(), Stream: w.GetStream(), Expected: expectedFromProto(w.GetExpected()), Actual: actual, cause: ce}})
		}
		return e
	}
	switch errorReason(ce) {
	case "STREAM_DELETED":
		return fmt.Errorf("append-multi: %w: %w", ErrStreamDeleted, err)
	case "TOPIC_NOT_FOUND":
		return fmt.Errorf("append-multi: %w: %w", ErrTopicNotFound, err)
	}
	return fmt.Errorf("append-multi: %w", err)
}
