package eventstore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cairnlog/cairn/acl"
	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/streams"
)

func durationpbNew(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// pageEntries is how many index entries one step of a read looks at.
const pageEntries = 256

// lastDurable is the revision of the stream's last durable event, nil when
// it has none. The index knows appends a moment before they are durable.
func lastDurable(x *streams.Index, stream string, st streams.State, hwm int64) *uint64 {
	if st.LastRevision < 0 {
		return nil
	}
	if st.LastOffset < hwm {
		v := uint64(st.LastRevision)
		return &v
	}
	entries, err := x.Entries(stream, st.LastRevision, true, pageEntries)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Offset < hwm {
			v := uint64(e.Revision)
			return &v
		}
	}
	return nil
}

// streamPage is one step of reading a stream.
type streamPage struct {
	events []*eventstorev1.RecordedEvent
	next   int64 // the revision to continue from
	end    bool  // nothing durable remains in this direction
}

// readStream returns up to max visible, durable events of stream starting at
// revision from (forwards, or backwards towards 0). Visible means not removed
// by truncate_before, max_count, max_age or deletion, as of st, the stream's
// durable state (durableState) that the caller already checked.
func (s *Service) readStream(p *partition.Partition, x *streams.Index, stream string, st streams.State, from int64, backwards bool, max int, filter *matcher, hwm int64) (streamPage, error) {
	nowMs := s.clock.Now().UnixMilli()
	first := st.FirstKept()
	var picked []streams.Entry
	page := streamPage{next: from}
	cur := from
	if backwards {
		cur = min(from, st.LastRevision)
	} else {
		cur = max64(from, first)
	}
	for len(picked) < max {
		if backwards && cur < first {
			page.end = true
			break
		}
		entries, err := x.Entries(stream, cur, backwards, pageEntries)
		if err != nil {
			return streamPage{}, toConnectError(err)
		}
		if len(entries) == 0 {
			page.end = true
			break
		}
		stop := false
		for _, e := range entries {
			if backwards {
				if e.Revision < first {
					page.end, stop = true, true
					break
				}
				cur = e.Revision - 1
				if e.Offset >= hwm || st.Expired(e.TimestampMs, nowMs) {
					continue
				}
			} else {
				if e.Offset >= hwm {
					page.end, stop = true, true // the rest is not durable yet
					break
				}
				cur = e.Revision + 1
				if st.Expired(e.TimestampMs, nowMs) {
					continue
				}
			}
			picked = append(picked, e)
			if len(picked) == max {
				stop = true
				break
			}
		}
		if stop {
			break
		}
	}
	page.next = cur
	if len(picked) == 0 {
		return page, nil
	}
	offsets := make([]int64, len(picked))
	for i, e := range picked {
		offsets[i] = e.Offset
	}
	recs, err := p.RecordsAt(offsets)
	if err != nil {
		return streamPage{}, toConnectError(err)
	}
	for _, e := range picked {
		r, ok := recs[e.Offset]
		if !ok {
			continue // cleaned away since the index was read
		}
		ev := recordedEvent(p.Topic(), p.Index(), e.Revision, r)
		if filter.matches(ev.Stream, ev.Type) {
			page.events = append(page.events, ev)
		}
	}
	return page, nil
}

// durableState reads a stream's state and waits until what it shows beyond
// the stream's last revision (metadata, deletions) is durable, so a reader
// never acts on what a crash could take back.
func durableState(ctx context.Context, p *partition.Partition, x *streams.Index, stream string) (streams.State, error) {
	// An AppendMulti holding the stream shows all its parts or none.
	if err := p.WaitStreamFree(ctx, stream); err != nil {
		return streams.State{}, toConnectError(err)
	}
	st, err := x.State(stream)
	if err != nil {
		return streams.State{}, toConnectError(err)
	}
	if err := p.WaitStreamDurable(ctx, stream); err != nil {
		return streams.State{}, toConnectError(err)
	}
	return st, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// ReadStream implements the API.
func (s *Service) ReadStream(ctx context.Context, req *connect.Request[eventstorev1.ReadStreamRequest]) (*connect.Response[eventstorev1.ReadStreamResponse], error) {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpRead, m.GetTopic()); err != nil {
		return nil, err
	}
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), false, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return forward(ctx, s, r, "ReadStream", m, eventstorev1connect.EventStoreClient.ReadStream)
	}
	if err := s.linearize(ctx, p); err != nil {
		return nil, err
	}
	x, err := p.StreamIndex()
	if err != nil {
		return nil, toConnectError(err)
	}
	st, err := durableState(ctx, p, x, m.GetStream())
	if err != nil {
		return nil, err
	}
	switch {
	case st.HardDeleted:
		return nil, withInfo(connect.CodeNotFound, reasonStreamDeleted, m.GetTopic(), m.GetStream(),
			fmt.Errorf("stream %q in topic %q was deleted for good", m.GetStream(), m.GetTopic()))
	case st.LastRevision < 0 && st.Metadata == streams.NoMetadata && !st.SoftDeleted:
		return nil, withInfo(connect.CodeNotFound, reasonStreamNotFound, m.GetTopic(), m.GetStream(),
			fmt.Errorf("stream %q not found in topic %q", m.GetStream(), m.GetTopic()))
	}
	backwards := m.GetDirection() == eventstorev1.Direction_DIRECTION_BACKWARDS
	from := int64(0)
	if backwards {
		from = st.LastRevision
	}
	if m.FromRevision != nil {
		if m.GetFromRevision() > 1<<62 {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("from_revision %d is too large", m.GetFromRevision()))
		}
		from = int64(m.GetFromRevision())
	}
	limit := s.limit(m.GetMaxCount())
	// One high watermark for the page and the last revision reported with
	// it, so that a page ending the stream agrees with last_revision.
	hwm := p.HighWatermark()
	page, err := s.readStream(p, x, m.GetStream(), st, from, backwards, limit, nil, hwm)
	if err != nil {
		return nil, err
	}
	if st, err = x.State(m.GetStream()); err != nil {
		return nil, toConnectError(err)
	}
	return connect.NewResponse(&eventstorev1.ReadStreamResponse{
		Events:       page.events,
		EndOfStream:  page.end,
		LastRevision: lastDurable(x, m.GetStream(), st, hwm),
	}), nil
}

func (s *Service) limit(requested uint32) int {
	if requested == 0 || int(requested) > s.cfg.ReadMax {
		return s.cfg.ReadMax
	}
	return int(requested)
}

// matcher is a compiled Filter; nil matches everything.
type matcher struct {
	typePrefix   string
	typeRegex    *regexp.Regexp
	streamPrefix string
}

func newMatcher(f *eventstorev1.Filter) (*matcher, error) {
	if f == nil || (f.GetEventTypePrefix() == "" && f.GetEventTypeRegex() == "" && f.GetStreamPrefix() == "") {
		return nil, nil
	}
	m := &matcher{typePrefix: f.GetEventTypePrefix(), streamPrefix: f.GetStreamPrefix()}
	if f.GetEventTypeRegex() != "" {
		re, err := regexp.Compile(f.GetEventTypeRegex())
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("event_type_regex: %w", err))
		}
		m.typeRegex = re
	}
	return m, nil
}

func (m *matcher) matches(stream, eventType string) bool {
	if m == nil {
		return true
	}
	return strings.HasPrefix(eventType, m.typePrefix) &&
		strings.HasPrefix(stream, m.streamPrefix) &&
		(m.typeRegex == nil || m.typeRegex.MatchString(eventType))
}

// topicReader reads a topic's events partition by partition, keeping the
// next offset of each.
type topicReader struct {
	ctx    context.Context
	s      *Service
	topic  string
	parts  []*partition.Partition // by partition index; nil where not read here
	served []int32                // the partitions read here, ascending
	next   []int64
	filter *matcher
	states map[string]streams.State // per read, so a stream's state is looked up once
}

func topicTarget(t *cluster.Topic) target {
	return target{topic: t.Name, index: -1, partitions: allPartitions(t)}
}

// allPartitions lists a topic's partition indexes.
func allPartitions(t *cluster.Topic) []int32 {
	out := make([]int32, len(t.Partitions))
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// newTopicReader reads the served partitions of t (ascending, led here)
// from the positions given, or their log start. Positions of other
// partitions of t are left to the nodes reading them.
func (s *Service) newTopicReader(ctx context.Context, t *cluster.Topic, served []int32, from []*eventstorev1.Position, filter *matcher) (*topicReader, error) {
	topic := t.Name
	r := &topicReader{ctx: ctx, s: s, topic: topic, filter: filter, served: served,
		parts: make([]*partition.Partition, len(t.Partitions)), next: make([]int64, len(t.Partitions))}
	for _, i := range served {
		p, err := s.cluster.Partition(topic, i)
		if err != nil {
			return nil, s.partitionError(topic, i, err)
		}
		r.parts[i] = p
		r.next[i] = p.LogStartOffset()
	}
	for _, pos := range from {
		if pos.GetPartition() < 0 || int(pos.GetPartition()) >= len(r.parts) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("position names partition %d; topic %q has %d", pos.GetPartition(), topic, len(r.parts)))
		}
		if p := r.parts[pos.GetPartition()]; p != nil {
			r.next[pos.GetPartition()] = max64(pos.GetOffset(), p.LogStartOffset())
		}
	}
	// Before any high watermark is read (a page, or toEnd).
	if err := s.linearizeAll(ctx, r.servedParts()); err != nil {
		return nil, err
	}
	return r, nil
}

// toEnd moves every position to its partition's last stable offset.
func (r *topicReader) toEnd() {
	for _, i := range r.served {
		r.next[i] = r.parts[i].LastStableOffset()
	}
}

func (r *topicReader) positions() []*eventstorev1.Position {
	out := make([]*eventstorev1.Position, len(r.served))
	for k, i := range r.served {
		out[k] = &eventstorev1.Position{Partition: i, Offset: r.next[i]}
	}
	return out
}

// atEnd reports whether every partition was read up to its last stable
// offset.
func (r *topicReader) atEnd() bool {
	for _, i := range r.served {
		if r.next[i] < r.parts[i].LastStableOffset() {
			return false
		}
	}
	return true
}

// servedParts lists the partitions read here, in the order of served.
func (r *topicReader) servedParts() []*partition.Partition {
	out := make([]*partition.Partition, len(r.served))
	for k, i := range r.served {
		out[k] = r.parts[i]
	}
	return out
}

// readPartition returns up to max events of partition i from its position,
// reading at most about maxBytes of the log, and advances the position past
// every record it looked at.
func (r *topicReader) readPartition(i int, max, maxBytes int) ([]*eventstorev1.RecordedEvent, error) {
	p := r.parts[i]
	// Up to the last stable offset, as a read_committed consumer reads: an
	// AppendMulti's records get their revisions at its COMMIT marker, and
	// a position must not pass them before.
	res, _, err := p.ReadAppendIsolated(nil, r.next[i], maxBytes, true)
	if err != nil {
		return nil, toConnectError(err)
	}
	if len(res.Records) == 0 {
		return nil, nil
	}
	x, err := p.StreamIndex()
	if err != nil {
		return nil, toConnectError(err)
	}
	nowMs := r.s.clock.Now().UnixMilli()
	var out []*eventstorev1.RecordedEvent
	lim := p.Limits()
	for data := res.Records; len(data) > 0 && len(out) < max; {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s-%d at %d: %w", r.topic, i, r.next[i], err))
		}
		data = rest
		recs, err := batch.Records(whole, lim)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s-%d batch %d: %w", r.topic, i, h.BaseOffset, err))
		}
		for _, rec := range recs {
			if rec.Offset < r.next[i] {
				continue
			}
			if len(out) == max {
				break
			}
			r.next[i] = rec.Offset + 1
			ev, err := r.event(x, i, rec, nowMs)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				out = append(out, ev)
			}
		}
		if len(out) < max {
			r.next[i] = max64(r.next[i], h.NextOffset())
		}
	}
	return out, nil
}

// event turns a record into the event it is, or nil when it is not a visible event.
func (r *topicReader) event(x *streams.Index, partitionIndex int, rec batch.Record, nowMs int64) (*eventstorev1.RecordedEvent, error) {
	if kind, _, _ := streams.Classify(rec); kind != streams.KindEvent {
		return nil, nil
	}
	stream := string(rec.Key)
	if r.filter != nil && !strings.HasPrefix(stream, r.filter.streamPrefix) {
		return nil, nil
	}
	rev, ok, err := x.RevisionAt(rec.Offset)
	if err != nil {
		return nil, toConnectError(err)
	}
	if !ok {
		return nil, nil // cleaned from the index: deleted or truncated
	}
	st, ok := r.states[stream]
	if !ok {
		if st, err = durableState(r.ctx, r.parts[partitionIndex], x, stream); err != nil {
			return nil, err
		}
		r.states[stream] = st
	}
	if rev < st.FirstKept() || st.Expired(rec.TimestampMs, nowMs) {
		return nil, nil
	}
	ev := recordedEvent(r.topic, int32(partitionIndex), rev, rec)
	if !r.filter.matches(ev.Stream, ev.Type) {
		return nil, nil
	}
	return ev, nil
}

// read returns up to max events, taking partitions in turn.
func (r *topicReader) read(max int) ([]*eventstorev1.RecordedEvent, error) {
	r.states = map[string]streams.State{}
	var out []*eventstorev1.RecordedEvent
	for _, i := range r.served {
		for len(out) < max && r.next[i] < r.parts[i].LastStableOffset() {
			evs, err := r.readPartition(int(i), max-len(out), 1<<20)
			if err != nil {
				return nil, err
			}
			out = append(out, evs...)
		}
	}
	return out, nil
}

// ReadTopic implements the API. Partitions led here are read here, the
// others through their leaders (spread.go).
func (s *Service) ReadTopic(ctx context.Context, req *connect.Request[eventstorev1.ReadTopicRequest]) (*connect.Response[eventstorev1.ReadTopicResponse], error) {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpRead, m.GetTopic()); err != nil {
		return nil, err
	}
	filter, err := newMatcher(m.GetFilter())
	if err != nil {
		return nil, err
	}
	t, err := s.topic(m.GetTopic(), false)
	if err != nil {
		return nil, err
	}
	served, err := servedPartitions(req.Header(), t)
	if err != nil {
		return nil, err
	}
	groups, err := s.partitionGroups(t, served, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	limit := s.limit(m.GetMaxCount())
	if len(groups) == 1 && groups[0].local {
		resp, err := s.readLocal(ctx, t, served, m.GetFrom(), filter, limit)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(resp), nil
	}
	resp, err := s.readSpread(ctx, t, groups, m, filter, limit)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// readLocal reads up to limit events of the served partitions, all led here.
func (s *Service) readLocal(ctx context.Context, t *cluster.Topic, served []int32, from []*eventstorev1.Position, filter *matcher, limit int) (*eventstorev1.ReadTopicResponse, error) {
	r, err := s.newTopicReader(ctx, t, served, from, filter)
	if err != nil {
		return nil, err
	}
	events, err := r.read(limit)
	if err != nil {
		return nil, err
	}
	return &eventstorev1.ReadTopicResponse{Events: events, Next: r.positions(), EndOfTopic: r.atEnd()}, nil
}
