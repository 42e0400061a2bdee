package client

import (
	"context"
	"errors"
	"io"
	"iter"
	"maps"
	"slices"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/client/internal/backoff"
)

// TopicPage is one read of a topic.
type TopicPage struct {
	// Events in log order per partition, partitions taken in turn.
	Events []RecordedEvent
	// Next is where to continue, one position per partition; records the
	// filter skipped advance it too.
	Next []Position
	// EndOfTopic is true when every partition was read to its end.
	EndOfTopic bool
}

// ReadTopic reads up to MaxCount events of every stream of a topic.
// Options: FromPositions, WithFilter, MaxCount.
func (c *Client) ReadTopic(ctx context.Context, topic string, opts ...ReadOption) (*TopicPage, error) {
	cfg, err := newReadConfig("ReadTopic", opts, optFromPositions, optFilter, optMaxCount)
	if err != nil {
		return nil, err
	}
	req := &eventstorev1.ReadTopicRequest{Topic: topic, From: positionsProto(cfg.fromPositions), Filter: cfg.filter.proto(), MaxCount: cfg.maxCount}
	var resp *connect.Response[eventstorev1.ReadTopicResponse]
	err = c.retry(ctx, func() (err error) {
		resp, err = c.rpc.ReadTopic(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil {
		return nil, apiError("read topic", topic, "", err)
	}
	return &TopicPage{
		Events:     eventsFromProto(resp.Msg.GetEvents()),
		Next:       positionsFromProto(resp.Msg.GetNext()),
		EndOfTopic: resp.Msg.GetEndOfTopic(),
	}, nil
}

// MessageKind says what a subscription message carries.
type MessageKind int

const (
	// MessageEvent carries an event.
	MessageEvent MessageKind = iota + 1
	// MessageCaughtUp comes once, when the subscription has delivered
	// everything that was durable when it started and goes live.
	MessageCaughtUp
	// MessageCheckpoint carries positions that records the filter skipped
	// moved, with no event to show for it. Storing them saves re-reading
	// those records after a restart.
	MessageCheckpoint
)

func (k MessageKind) String() string {
	switch k {
	case MessageEvent:
		return "event"
	case MessageCaughtUp:
		return "caught-up"
	case MessageCheckpoint:
		return "checkpoint"
	}
	return "unknown"
}

// Message is one thing a subscription delivers.
type Message struct {
	Kind MessageKind
	// Event is set for MessageEvent.
	Event RecordedEvent
	// Positions is set for MessageCheckpoint: next offsets per partition.
	Positions []Position
}

// Subscription delivers a stream's or topic's events, catching up first and
// then live. Recv is for one goroutine; Close may be called from any.
type Subscription struct {
	client        *Client
	ctx           context.Context
	topic, stream string
	req           *eventstorev1.SubscribeRequest // as first sent
	cancel        context.CancelFunc

	// rpc is read by Recv's goroutine, which alone replaces it (under mu),
	// and by Close (under mu).
	mu     sync.Mutex
	rpc    *connect.ServerStreamForClient[eventstorev1.SubscribeResponse]
	closed bool

	positions    map[int32]int64
	nextRevision *uint64
	caughtUp     bool
	// resumes counts the resubscriptions since the last message, bounded
	// by the client's retry attempts.
	resumes int
}

// Subscribe subscribes to stream in topic, or to the whole topic when
// stream is empty. Options: for a stream, FromRevision, FromEnd and
// WithFilter; for a topic, FromPositions, FromEnd and WithFilter. Without
// them it starts at the beginning. Errors about the stream or topic
// (ErrStreamNotFound, ErrStreamDeleted, ErrTopicNotFound) come from the
// first Recv. The subscription ends with ctx or Close.
func (c *Client) Subscribe(ctx context.Context, topic, stream string, opts ...ReadOption) (*Subscription, error) {
	var cfg readConfig
	var err error
	if stream != "" {
		cfg, err = newReadConfig("Subscribe to a stream", opts, optFromRevision, optFromEnd, optFilter)
	} else {
		cfg, err = newReadConfig("Subscribe to a topic", opts, optFromPositions, optFromEnd, optFilter)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{client: c, ctx: ctx, topic: topic, stream: stream, cancel: cancel, positions: map[int32]int64{}, nextRevision: cfg.fromRevision}
	s.req = &eventstorev1.SubscribeRequest{
		Topic:         topic,
		Stream:        stream,
		Filter:        cfg.filter.proto(),
		FromRevision:  cfg.fromRevision,
		FromPositions: positionsProto(cfg.fromPositions),
		FromEnd:       cfg.fromEnd,
	}
	if s.rpc, err = c.rpc.Subscribe(ctx, connect.NewRequest(s.req)); err != nil {
		cancel()
		return nil, apiError("subscribe", topic, stream, err)
	}
	for _, p := range cfg.fromPositions {
		s.positions[p.Partition] = p.Offset
	}
	return s, nil
}

// Recv blocks for the next message. It returns io.EOF when the server ended
// the subscription without an error, and the context's error after Close
// or when the context ends.
//
// When the server ends the subscription as unavailable (it is shutting
// down, or on a cluster the leader of what it reads changed), Recv
// subscribes again from where it was, up to the client's retry attempts,
// without repeating or skipping an event, and without a second
// MessageCaughtUp. It cannot when the subscription started FromEnd and has
// no exact place to go on from (a topic subscription, or a stream one that
// delivered no event yet): then it returns the connect CodeUnavailable
// error, and the caller resumes from Positions or NextRevision.
func (s *Subscription) Recv() (Message, error) {
	for {
		if s.rpc.Receive() {
			m, skip, err := s.message()
			if !skip {
				s.resumes = 0
				return m, err
			}
			continue
		}
		err := s.rpc.Err()
		if err == nil {
			return Message{}, io.EOF
		}
		if !s.resume(err) {
			return Message{}, apiError("subscribe", s.topic, s.stream, err)
		}
	}
}

// message is what the server sent last; skip is set for a CaughtUp that a
// resubscription repeats.
func (s *Subscription) message() (m Message, skip bool, err error) {
	switch m := s.rpc.Msg().GetContent().(type) {
	case *eventstorev1.SubscribeResponse_Event:
		ev := eventFromProto(m.Event)
		s.positions[ev.Position.Partition] = ev.Position.Offset + 1
		next := ev.Revision + 1
		s.nextRevision = &next
		return Message{Kind: MessageEvent, Event: ev}, false, nil
	case *eventstorev1.SubscribeResponse_CaughtUp:
		if s.caughtUp {
			return Message{}, true, nil
		}
		s.caughtUp = true
		return Message{Kind: MessageCaughtUp}, false, nil
	case *eventstorev1.SubscribeResponse_Checkpoint:
		ps := positionsFromProto(m.Checkpoint.GetPositions())
		for _, p := range ps {
			s.positions[p.Partition] = max(s.positions[p.Partition], p.Offset)
		}
		return Message{Kind: MessageCheckpoint, Positions: ps}, false, nil
	}
	return Message{}, false, apiError("subscribe", s.topic, s.stream, errors.New("message of an unknown kind (a newer server?)"))
}

// resume subscribes again after the server ended the subscription with
// err, when err is worth it and the subscription knows exactly where to go
// on from, pausing as between retries. It reports whether it did.
func (s *Subscription) resume(err error) bool {
	req, ok := s.resumeRequest()
	if !ok || !retryable(err) || s.ctx.Err() != nil || s.resumes+1 >= s.client.retries {
		return false
	}
	s.resumes++
	policy := backoff.Policy{Initial: s.client.backoff, Max: retryBackoffMax}
	if backoff.Sleep(s.ctx, policy.Pause(s.resumes)) != nil {
		return false
	}
	rpc, openErr := s.client.rpc.Subscribe(s.ctx, connect.NewRequest(req))
	if openErr != nil {
		return false // only a request the client cannot send; the last error stands
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rpc.Close() // ended already; this frees its connection
	s.rpc = rpc
	if s.closed {
		_ = rpc.Close() // Close came while it opened: Receive reports the context's end
	}
	return true
}

// resumeRequest is the request that goes on right after what was
// delivered, and whether there is one: a subscription from the end knows
// no exact place until it delivered an event of a stream, and never for
// every partition of a topic.
func (s *Subscription) resumeRequest() (*eventstorev1.SubscribeRequest, bool) {
	req := proto.CloneOf(s.req)
	if s.stream != "" {
		if s.nextRevision == nil {
			return req, !req.FromEnd // from the beginning, nothing delivered
		}
		req.FromRevision, req.FromEnd = s.nextRevision, false
		return req, true
	}
	if req.FromEnd {
		return nil, false
	}
	req.FromPositions = positionsProto(s.Positions())
	return req, true
}

// All yields messages until the first error, which it yields last (io.EOF
// included). Breaking out of the loop leaves the subscription open.
func (s *Subscription) All() iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for {
			m, err := s.Recv()
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// Positions is where a topic subscription would resume to continue after
// what it delivered: the next offset of each partition it started from or
// delivered from. Partitions it knows nothing of are left out (a new
// subscription starts them at their first record).
func (s *Subscription) Positions() []Position {
	out := make([]Position, 0, len(s.positions))
	for _, p := range slices.Sorted(maps.Keys(s.positions)) {
		out = append(out, Position{Partition: p, Offset: s.positions[p]})
	}
	return out
}

// NextRevision is where a stream subscription would resume: one past the
// last event delivered, or its FromRevision; ok is false before either.
func (s *Subscription) NextRevision() (revision uint64, ok bool) {
	if s.nextRevision == nil {
		return 0, false
	}
	return *s.nextRevision, true
}

// CaughtUp reports whether the subscription has gone live.
func (s *Subscription) CaughtUp() bool { return s.caughtUp }

// Close ends the subscription.
func (s *Subscription) Close() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.rpc.Close()
}
