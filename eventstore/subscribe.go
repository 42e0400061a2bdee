package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/acl"
	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
)

// subscribePage bounds what one step of a subscription reads before sending
// it. Sending blocks while the client does not read (HTTP/2 flow control),
// so a slow subscriber holds at most one page in the server.
const subscribePage = 256

// Subscribe implements the API: it catches up from the requested position,
// sends CaughtUp once, then sends events as they become durable. Because a
// subscription only ever delivers records below the high watermark and
// continues from the exact position after the last one sent, there is no gap
// and no duplicate at the switch from catching up to live.
func (s *Service) Subscribe(ctx context.Context, req *connect.Request[eventstorev1.SubscribeRequest], out *connect.ServerStream[eventstorev1.SubscribeResponse]) error {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpRead, m.GetTopic()); err != nil {
		return err
	}
	filter, err := newMatcher(m.GetFilter())
	if err != nil {
		return err
	}
	subscriptions.Inc()
	defer subscriptions.Dec()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	if m.GetStream() != "" {
		err = s.subscribeStream(ctx, m, isForwarded(req.Header()), filter, out)
	} else {
		err = s.subscribeTopic(ctx, m, req.Header(), filter, out)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		select {
		case <-s.closing:
			return connect.NewError(connect.CodeUnavailable, errors.New("server shutting down; resume from the last position received"))
		default:
		}
	}
	return err
}

// subscribeStream serves a stream subscription here while this node leads
// the stream's partition, or relays it from the node that does.
func (s *Service) subscribeStream(ctx context.Context, m *eventstorev1.SubscribeRequest, forwarded bool, filter *matcher, out sender) error {
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), false, forwarded)
	if err != nil {
		return err
	}
	if p == nil {
		return s.relay(ctx, r, m, nil, out)
	}
	led := target{topic: p.Topic(), index: p.Index()}
	// The catch-up starts from state a quorum confirmed; what follows is
	// pushed as it commits, and a leader change ends the subscription.
	if err := s.linearize(ctx, p); err != nil {
		return err
	}
	x, err := p.StreamIndex()
	if err != nil {
		return toConnectError(err)
	}
	next := int64(0)
	switch {
	case m.FromRevision != nil:
		if m.GetFromRevision() > 1<<62 {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("from_revision %d is too large", m.GetFromRevision()))
		}
		next = int64(m.GetFromRevision())
	case m.GetFromEnd():
		st, err := x.State(m.GetStream())
		if err != nil {
			return toConnectError(err)
		}
		if last := lastDurable(x, m.GetStream(), st, p.HighWatermark()); last != nil {
			next = int64(*last) + 1
		}
	}
	caughtUp := false
	for {
		changed := p.Changed() // before reading, so no advance is missed
		moved := s.placement.LeadersChanged()
		if err := s.stillLeading(led); err != nil {
			return err
		}
		st, err := durableState(ctx, p, x, m.GetStream())
		if err != nil {
			return err
		}
		if st.HardDeleted {
			return withInfo(connect.CodeNotFound, reasonStreamDeleted, m.GetTopic(), m.GetStream(), fmt.Errorf("stream %q was deleted for good", m.GetStream()))
		}
		page, err := s.readStream(p, x, m.GetStream(), st, next, false, subscribePage, filter, p.HighWatermark())
		if err != nil {
			return err
		}
		if err := sendEvents(out, page.events); err != nil {
			return err
		}
		next = page.next
		if !page.end {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := out.Send(&eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_CaughtUp{CaughtUp: &eventstorev1.CaughtUp{}}}); err != nil {
				return err
			}
		}
		if err := wait(ctx, p, changed, moved); err != nil {
			return err
		}
	}
}

// sender is where a subscription sends: the caller's stream, or the merge
// of a subscription over partitions led by several nodes.
type sender interface {
	Send(*eventstorev1.SubscribeResponse) error
}

// subscribeTopic serves a topic subscription (of the partitions its header
// names, or all): here where this node leads them all, relayed from the one
// node that does, or else merged from each leader's (subscribeSpread).
func (s *Service) subscribeTopic(ctx context.Context, m *eventstorev1.SubscribeRequest, h http.Header, filter *matcher, out sender) error {
	t, err := s.topic(m.GetTopic(), false)
	if err != nil {
		return err
	}
	served, err := servedPartitions(h, t)
	if err != nil {
		return err
	}
	groups, err := s.partitionGroups(t, served, isForwarded(h))
	if err != nil {
		return err
	}
	if len(groups) == 1 {
		return s.subscribeGroup(ctx, t, groups[0], m, filter, out)
	}
	return s.subscribeSpread(ctx, t, groups, m, filter, out)
}

// subscribeGroup serves a subscription to partitions of t led at one place:
// here, or relayed from their leader.
func (s *Service) subscribeGroup(ctx context.Context, t *cluster.Topic, g routeGroup, m *eventstorev1.SubscribeRequest, filter *matcher, out sender) error {
	if !g.local {
		g.of = target{topic: t.Name, index: -1, partitions: g.partitions}
		req := proto.CloneOf(m)
		req.FromPositions = positionsIn(m.GetFromPositions(), g.partitions)
		return s.relay(ctx, g.route, req, g.partitions, out)
	}
	return s.subscribeLocal(ctx, t, g.partitions, m, filter, out)
}

// subscribeLocal serves a subscription to partitions of t led here.
func (s *Service) subscribeLocal(ctx context.Context, t *cluster.Topic, served []int32, m *eventstorev1.SubscribeRequest, filter *matcher, out sender) error {
	r, err := s.newTopicReader(ctx, t, served, m.GetFromPositions(), filter)
	if err != nil {
		return err
	}
	led := target{topic: t.Name, index: -1, partitions: served}
	if m.GetFromEnd() {
		r.toEnd()
	}
	caughtUp := false
	for {
		parts := r.servedParts()
		changed := make([]<-chan struct{}, len(parts))
		for i, p := range parts {
			changed[i] = p.Changed()
		}
		moved := s.placement.LeadersChanged()
		if err := s.stillLeading(led); err != nil {
			return err
		}
		before := append([]int64(nil), r.next...)
		events, err := r.read(subscribePage)
		if err != nil {
			return err
		}
		if err := sendEvents(out, events); err != nil {
			return err
		}
		if len(events) == 0 && !equal(before, r.next) && caughtUp {
			// Filtered-out records moved the positions: say so, so that a
			// client checkpointing them does not re-read them after a restart.
			if err := out.Send(&eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_Checkpoint{Checkpoint: &eventstorev1.Checkpoint{Positions: r.positions()}}}); err != nil {
				return err
			}
		}
		if !r.atEnd() {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := out.Send(&eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_CaughtUp{CaughtUp: &eventstorev1.CaughtUp{}}}); err != nil {
				return err
			}
		}
		if err := waitAny(ctx, parts, changed, moved); err != nil {
			return err
		}
	}
}

func sendEvents(out sender, events []*eventstorev1.RecordedEvent) error {
	for _, ev := range events {
		if err := out.Send(&eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_Event{Event: ev}}); err != nil {
			return err
		}
		subscriptionEvents.Inc()
	}
	return nil
}

func equal(a, b []int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wait blocks until the partition's high watermark moves (changed closes)
// or its leader may have changed (moved closes; the caller checks).
func wait(ctx context.Context, p *partition.Partition, changed, moved <-chan struct{}) error {
	select {
	case <-changed:
		if err := p.Err(); err != nil {
			return toConnectError(err)
		}
		return nil
	case <-moved:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitAny blocks until any partition's high watermark moves, or a leader
// may have changed (moved closes; the caller checks).
func waitAny(ctx context.Context, parts []*partition.Partition, changed []<-chan struct{}, moved <-chan struct{}) error {
	if len(parts) == 1 {
		return wait(ctx, parts[0], changed[0], moved)
	}
	const fixed = 2 // ctx.Done(), moved
	cases := make([]reflect.SelectCase, 0, len(changed)+fixed)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(moved)})
	for _, ch := range changed {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	switch chosen {
	case 0:
		return ctx.Err()
	case 1:
		return nil
	}
	if err := parts[chosen-fixed].Err(); err != nil {
		return toConnectError(err)
	}
	return nil
}
