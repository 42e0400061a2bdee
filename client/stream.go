package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// Append writes events to the end of stream in topic if the stream is as
// expected, and returns once they are durable. A topic that does not exist
// is created as an event store. A stream in another state gives a
// *WrongExpectedRevisionError (nothing written); a hard-deleted stream
// gives ErrStreamDeleted.
func (c *Client) Append(ctx context.Context, topic, stream string, expected Expected, events ...EventData) (AppendResult, error) {
	if len(events) == 0 {
		return AppendResult{}, fmt.Errorf("append %s/%s: no events", topic, stream)
	}
	req := &eventstorev1.AppendRequest{
		Topic:            topic,
		Stream:           stream,
		ExpectedRevision: expected.proto(),
		Events:           make([]*eventstorev1.Event, len(events)),
	}
	for i, ev := range events {
		id := ev.ID
		if id == "" {
			// Fixed before the first attempt, so a retry after a lost
			// answer is recognised by the server as the same append.
			id = uuid.NewString()
		}
		req.Events[i] = &eventstorev1.Event{Id: id, Type: ev.Type, Data: ev.Data, ContentType: ev.ContentType, Metadata: ev.Metadata}
	}
	var resp *connect.Response[eventstorev1.AppendResponse]
	err := c.retry(ctx, func() (err error) {
		resp, err = c.rpc.Append(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil {
		return AppendResult{}, apiError("append", topic, stream, err)
	}
	m := resp.Msg
	return AppendResult{
		FirstRevision: m.GetFirstRevision(),
		LastRevision:  m.GetLastRevision(),
		Position:      positionFromProto(m.GetPosition()),
		Duplicate:     m.GetDuplicate(),
	}, nil
}

// StreamPage is one read of a stream.
type StreamPage struct {
	// Events in the order read: ascending revisions forwards, descending
	// backwards.
	Events []RecordedEvent
	// EndOfStream is true when no event remains in the read's direction.
	EndOfStream bool
	// LastRevision is the stream's last revision as the server answered,
	// -1 when it has none. An append landing during the read can put it
	// past the page's last event even at the end of the stream, so a
	// writer deciding on the events read expects their last revision, not
	// this one.
	LastRevision int64
}

// ReadStream reads up to MaxCount events of a stream, forwards from its
// start or backwards from its end (or from FromRevision). Options:
// FromRevision, Backwards, MaxCount. A stream never written gives
// ErrStreamNotFound; a hard-deleted one ErrStreamDeleted.
func (c *Client) ReadStream(ctx context.Context, topic, stream string, opts ...ReadOption) (*StreamPage, error) {
	cfg, err := newReadConfig("ReadStream", opts, optFromRevision, optBackwards, optMaxCount)
	if err != nil {
		return nil, err
	}
	return c.readStream(ctx, topic, stream, cfg)
}

func (c *Client) readStream(ctx context.Context, topic, stream string, cfg readConfig) (*StreamPage, error) {
	req := &eventstorev1.ReadStreamRequest{Topic: topic, Stream: stream, FromRevision: cfg.fromRevision, MaxCount: cfg.maxCount}
	if cfg.backwards {
		req.Direction = eventstorev1.Direction_DIRECTION_BACKWARDS
	}
	var resp *connect.Response[eventstorev1.ReadStreamResponse]
	err := c.retry(ctx, func() (err error) {
		resp, err = c.rpc.ReadStream(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil {
		return nil, apiError("read stream", topic, stream, err)
	}
	return &StreamPage{
		Events:       eventsFromProto(resp.Msg.GetEvents()),
		EndOfStream:  resp.Msg.GetEndOfStream(),
		LastRevision: lastRevision(resp.Msg.LastRevision),
	}, nil
}

// emptyPagesMax bounds reads that return no event without reaching the end
// (possible only while the cleaner removes records being read), so paging
// cannot spin.
const emptyPagesMax = 3

// ReadStreamPages reads a stream page by page (each page up to MaxCount
// events) until its end in the read's direction. Options as ReadStream. The
// sequence stops at the first error, which it yields.
func (c *Client) ReadStreamPages(ctx context.Context, topic, stream string, opts ...ReadOption) iter.Seq2[*StreamPage, error] {
	return func(yield func(*StreamPage, error) bool) {
		cfg, err := newReadConfig("ReadStreamPages", opts, optFromRevision, optBackwards, optMaxCount)
		if err != nil {
			yield(nil, err)
			return
		}
		empty := 0
		for {
			page, err := c.readStream(ctx, topic, stream, cfg)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(page, nil) || page.EndOfStream {
				return
			}
			if len(page.Events) == 0 {
				if empty++; empty > emptyPagesMax {
					yield(nil, fmt.Errorf("read stream %s/%s: %d pages in a row without events or end", topic, stream, empty))
					return
				}
				continue
			}
			empty = 0
			last := page.Events[len(page.Events)-1].Revision
			if cfg.backwards {
				if last == 0 {
					return
				}
				last--
			} else {
				last++
			}
			cfg.fromRevision = &last
		}
	}
}

// ReadStreamAll yields every event of a stream in the read's direction,
// reading page by page. Options as ReadStream (MaxCount sizes the pages).
func (c *Client) ReadStreamAll(ctx context.Context, topic, stream string, opts ...ReadOption) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		for page, err := range c.ReadStreamPages(ctx, topic, stream, opts...) {
			if err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			for _, ev := range page.Events {
				if !yield(ev, nil) {
					return
				}
			}
		}
	}
}

// StreamMetadata bounds which of a stream's events are kept. Reads honour
// it at once; the topic's cleaner reclaims the space.
type StreamMetadata struct {
	// MaxCount keeps only the newest MaxCount events; nil is no bound.
	MaxCount *uint64
	// MaxAge hides events older than this; 0 is no bound.
	MaxAge time.Duration
	// TruncateBefore hides events with a lower revision; nil is no bound.
	TruncateBefore *uint64
}

// StreamInfo is a stream's state.
type StreamInfo struct {
	Metadata StreamMetadata
	// LastRevision is the stream's last revision, -1 when it has none.
	LastRevision int64
	SoftDeleted  bool
	HardDeleted  bool
}

// GetStreamMetadata returns a stream's revision, metadata and deletion state.
func (c *Client) GetStreamMetadata(ctx context.Context, topic, stream string) (StreamInfo, error) {
	var resp *connect.Response[eventstorev1.GetStreamMetadataResponse]
	err := c.retry(ctx, func() (err error) {
		resp, err = c.rpc.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: topic, Stream: stream}))
		return err
	})
	if err != nil {
		return StreamInfo{}, apiError("get stream metadata", topic, stream, err)
	}
	m := resp.Msg
	md := StreamMetadata{MaxCount: m.GetMetadata().MaxCount, TruncateBefore: m.GetMetadata().TruncateBefore}
	if d := m.GetMetadata().GetMaxAge(); d != nil {
		md.MaxAge = d.AsDuration()
	}
	return StreamInfo{Metadata: md, LastRevision: lastRevision(m.LastRevision), SoftDeleted: m.GetSoftDeleted(), HardDeleted: m.GetHardDeleted()}, nil
}

// SetStreamMetadata replaces a stream's bounds (every field: one left unset
// removes that bound). It returns the position of the metadata record.
func (c *Client) SetStreamMetadata(ctx context.Context, topic, stream string, md StreamMetadata) (Position, error) {
	if md.MaxAge < 0 {
		return Position{}, fmt.Errorf("set stream metadata %s/%s: negative max age %s", topic, stream, md.MaxAge)
	}
	pm := &eventstorev1.StreamMetadata{MaxCount: md.MaxCount, TruncateBefore: md.TruncateBefore}
	if md.MaxAge > 0 {
		pm.MaxAge = durationpb.New(md.MaxAge)
	}
	var resp *connect.Response[eventstorev1.SetStreamMetadataResponse]
	// Setting the same bounds twice leaves the same state: safe to retry.
	err := c.retry(ctx, func() (err error) {
		resp, err = c.rpc.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{Topic: topic, Stream: stream, Metadata: pm}))
		return err
	})
	if err != nil {
		return Position{}, apiError("set stream metadata", topic, stream, err)
	}
	return positionFromProto(resp.Msg.GetPosition()), nil
}

// DeleteMode is how DeleteStream deletes.
type DeleteMode int

const (
	// SoftDelete hides the stream's events; it may be written again,
	// continuing its revisions.
	SoftDelete DeleteMode = iota
	// HardDelete is permanent: the stream can never be read or written again.
	HardDelete
)

// DeleteStream deletes a stream if it is as expected. It is tried once: a
// hard delete retried after a lost answer would report ErrStreamDeleted.
func (c *Client) DeleteStream(ctx context.Context, topic, stream string, mode DeleteMode, expected Expected) (Position, error) {
	if mode != SoftDelete && mode != HardDelete {
		return Position{}, errors.New("delete stream: unknown mode")
	}
	resp, err := c.rpc.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{
		Topic: topic, Stream: stream, Hard: mode == HardDelete, ExpectedRevision: expected.proto(),
	}))
	if err != nil {
		return Position{}, apiError("delete stream", topic, stream, err)
	}
	return positionFromProto(resp.Msg.GetPosition()), nil
}
