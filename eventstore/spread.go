package eventstore

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/cluster"
)

// Topic reads and subscriptions over partitions led by different nodes:
// the partitions led here are served here, and each other leader serves its
// own, asked with a forwarded ReadTopic or Subscribe naming them in
// partitionsHeader. A page takes the groups in turn until it holds the
// events asked for, as a local read takes partitions in turn; a
// subscription merges the groups' streams.

// partitionsHeader, on a forwarded ReadTopic or topic Subscribe, names the
// partitions the node asked serves ("0,2"); without it, every partition.
const partitionsHeader = "Cairn-Partitions"

// formatPartitions is the partitionsHeader value naming partitions.
func formatPartitions(partitions []int32) string {
	parts := make([]string, len(partitions))
	for i, p := range partitions {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ",")
}

// parsePartitions reads a partitionsHeader value of a topic with count
// partitions: ascending, distinct, in range (pure).
func parsePartitions(value string, count int) ([]int32, error) {
	var out []int32
	for _, f := range strings.Split(value, ",") {
		p, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || p < 0 || int(p) >= count || (len(out) > 0 && int32(p) <= out[len(out)-1]) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s %q: want ascending partitions of the %d", partitionsHeader, value, count))
		}
		out = append(out, int32(p))
	}
	return out, nil
}

// servedPartitions is what a topic read or subscription serves: the
// partitions its header names, or all of t's.
func servedPartitions(h http.Header, t *cluster.Topic) ([]int32, error) {
	if v := h.Get(partitionsHeader); v != "" {
		return parsePartitions(v, len(t.Partitions))
	}
	return allPartitions(t), nil
}

// routeGroup is partitions served at the same place.
type routeGroup struct {
	route
	partitions []int32 // ascending
}

// groupRoutes groups partitions by where they are served, the groups in the
// order of their first partition (pure). routes[k] is the route of
// partitions[k].
func groupRoutes(partitions []int32, routes []route) []routeGroup {
	var out []routeGroup
	for k, r := range routes {
		at := slices.IndexFunc(out, func(g routeGroup) bool { return g.local == r.local && g.node == r.node })
		if at < 0 {
			out = append(out, routeGroup{route: route{local: r.local, node: r.node, addr: r.addr}})
			at = len(out) - 1
		}
		out[at].partitions = append(out[at].partitions, partitions[k])
	}
	return out
}

// partitionGroups routes each of the partitions of t and groups them. A
// forwarded call is served only where every partition it names is led
// here (UNAVAILABLE otherwise).
func (s *Service) partitionGroups(t *cluster.Topic, partitions []int32, forwarded bool) ([]routeGroup, error) {
	routes := make([]route, len(partitions))
	for k, i := range partitions {
		r, err := s.routeOf(target{topic: t.Name, index: i}, forwarded)
		if err != nil {
			return nil, err
		}
		routes[k] = r
	}
	return groupRoutes(partitions, routes), nil
}

// positionsIn keeps the positions of the given partitions.
func positionsIn(from []*eventstorev1.Position, partitions []int32) []*eventstorev1.Position {
	var out []*eventstorev1.Position
	for _, p := range from {
		if slices.Contains(partitions, p.GetPartition()) {
			out = append(out, p)
		}
	}
	return out
}

// unreadPositions are the positions of partitions a page had no room left
// to read: where the caller asked, or 0 (a read starts at the partition's
// log start at the earliest).
func unreadPositions(from []*eventstorev1.Position, partitions []int32) []*eventstorev1.Position {
	out := make([]*eventstorev1.Position, len(partitions))
	for k, i := range partitions {
		out[k] = &eventstorev1.Position{Partition: i}
		if at := slices.IndexFunc(from, func(p *eventstorev1.Position) bool { return p.GetPartition() == i }); at >= 0 {
			out[k].Offset = from[at].GetOffset()
		}
	}
	return out
}

// readSpread reads a page of a topic whose partitions are led at several
// places, group by group, each group's leader given what room the page has
// left.
func (s *Service) readSpread(ctx context.Context, t *cluster.Topic, groups []routeGroup, m *eventstorev1.ReadTopicRequest, filter *matcher, limit int) (*eventstorev1.ReadTopicResponse, error) {
	for _, pos := range m.GetFrom() {
		if pos.GetPartition() < 0 || int(pos.GetPartition()) >= len(t.Partitions) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("position names partition %d; topic %q has %d", pos.GetPartition(), t.Name, len(t.Partitions)))
		}
	}
	out := &eventstorev1.ReadTopicResponse{EndOfTopic: true}
	for _, g := range groups {
		from := positionsIn(m.GetFrom(), g.partitions)
		room := limit - len(out.Events)
		var part *eventstorev1.ReadTopicResponse
		var err error
		switch {
		case room <= 0:
			part = &eventstorev1.ReadTopicResponse{Next: unreadPositions(from, g.partitions)}
		case g.local:
			part, err = s.readLocal(ctx, t, g.partitions, from, filter, room)
		default:
			part, err = s.readRemote(ctx, g, &eventstorev1.ReadTopicRequest{Topic: t.Name, From: from, Filter: m.GetFilter(), MaxCount: uint32(room)})
		}
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, part.GetEvents()...)
		out.Next = append(out.Next, part.GetNext()...)
		out.EndOfTopic = out.EndOfTopic && part.GetEndOfTopic()
	}
	slices.SortFunc(out.Next, func(a, b *eventstorev1.Position) int { return int(a.GetPartition() - b.GetPartition()) })
	return out, nil
}

// readRemote asks the leader of g's partitions for a page of them.
func (s *Service) readRemote(ctx context.Context, g routeGroup, m *eventstorev1.ReadTopicRequest) (*eventstorev1.ReadTopicResponse, error) {
	forwardedCalls.WithLabelValues("ReadTopic").Inc()
	req := connect.NewRequest(m)
	s.markForwarded(ctx, req.Header())
	req.Header().Set(partitionsHeader, formatPartitions(g.partitions))
	resp, err := s.peers.client(g.addr).ReadTopic(ctx, req)
	if err != nil {
		return nil, forwardError(ctx, g.route, err)
	}
	if n := len(resp.Msg.GetNext()); n != len(g.partitions) {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("node %d answered a read of %d partitions of %q with %d positions",
			g.node, len(g.partitions), m.GetTopic(), n))
	}
	return resp.Msg, nil
}

// subscribeSpread serves a topic subscription over partitions led at
// several places: one source per group (served here, or relayed from its
// leader), merged into out. Events and checkpoints pass through as they
// come (each partition's in order, as one source serves it); CaughtUp is
// sent once every source has caught up. The first source to end ends the
// subscription with its error, so a leader change anywhere ends it with
// UNAVAILABLE and the client resumes from its positions.
func (s *Service) subscribeSpread(ctx context.Context, t *cluster.Topic, groups []routeGroup, m *eventstorev1.SubscribeRequest, filter *matcher, out sender) error {
	ctx, cancel := context.WithCancel(ctx)
	// Unbuffered: a source waits while the caller does not read, so flow
	// control reaches each leader as it does a single relay.
	messages := make(chan *eventstorev1.SubscribeResponse)
	ends := make(chan error, len(groups))
	for _, g := range groups {
		go func() {
			ends <- s.subscribeGroup(ctx, t, g, m, filter, channelSender{ctx: ctx, messages: messages})
		}()
	}
	running := len(groups)
	defer func() {
		cancel()
		for ; running > 0; running-- {
			<-ends
		}
	}()
	caughtUp := 0
	for {
		select {
		case msg := <-messages:
			if msg.GetCaughtUp() != nil {
				if caughtUp++; caughtUp < len(groups) {
					continue
				}
			}
			if err := out.Send(msg); err != nil {
				return err
			}
		case err := <-ends:
			running--
			return err
		}
	}
}

// channelSender hands a source's messages to subscribeSpread.
type channelSender struct {
	ctx      context.Context
	messages chan<- *eventstorev1.SubscribeResponse
}

func (c channelSender) Send(msg *eventstorev1.SubscribeResponse) error {
	select {
	case c.messages <- msg:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}
