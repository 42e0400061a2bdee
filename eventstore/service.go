package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/acl"
	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/streams"
)

// Config is the service's part of the server configuration.
type Config struct {
	// DefaultPartitions is the partition count of topics an append creates.
	DefaultPartitions int32
	// AutoCreateTopics lets writes create missing topics with cleanup.policy=stream.
	AutoCreateTopics bool
	// ReadMax bounds the events one read returns.
	ReadMax int
	// Authorizer, when set, checks each call against the cluster's ACLs
	// (authorize.go); nil allows everything.
	Authorizer *acl.Authorizer
	// Txn runs AppendMulti's transactions; nil refuses AppendMulti.
	Txn Coordinator
}

// Service implements eventstorev1connect.EventStoreHandler over a cluster.
type Service struct {
	cluster   *cluster.Cluster
	placement placement // the cluster's, unless a test places partitions elsewhere
	peers     *peers    // calls forwarded to leaders
	cfg       Config
	logger    *slog.Logger
	clock     env.Clock // the cluster's: event times, read deadlines, latency
	ids       io.Reader // the cluster's randomness: ids of events given none

	// closing ends subscriptions when the server stops: HTTP shutdown
	// waits for handlers, and a live subscription never returns by itself.
	closing   chan struct{}
	closeOnce sync.Once

	slots chan *multiSlot // AppendMulti's transactional ids (appendmulti.go)
}

var _ eventstorev1connect.EventStoreHandler = (*Service)(nil)

// New returns the service.
func New(c *cluster.Cluster, cfg Config, logger *slog.Logger) *Service {
	if cfg.ReadMax <= 0 {
		cfg.ReadMax = 1000
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	e := c.Env()
	s := &Service{cluster: c, placement: c, peers: newPeers(), cfg: cfg, logger: logger, clock: e.Clock, ids: e.Rand, closing: make(chan struct{})}
	s.initSlots()
	return s
}

// Handler returns the path prefix and handler to mount on the HTTP mux.
func (s *Service) Handler() (string, http.Handler) {
	// Small responses are sent uncompressed: resetting a gzip writer costs
	// more CPU than a one-event answer is worth.
	return eventstorev1connect.NewEventStoreHandler(s, connect.WithReadMaxBytes(messageBytesMax), connect.WithCompressMinBytes(4096))
}

// Close ends every subscription, relayed ones included.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.peers.close()
	})
}

// streamPartition finds the partition holding stream in topic, creating the
// topic (as an event store) when create is set and it is missing. When
// another node leads that partition it returns no partition and the route
// to that node; a call already forwarded (forwarded) is not routed again.
func (s *Service) streamPartition(topic, stream string, create, forwarded bool) (*partition.Partition, route, error) {
	if err := validateStream(stream); err != nil {
		return nil, route{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	t, err := s.topic(topic, create)
	if err != nil {
		return nil, route{}, err
	}
	idx := streams.Partition([]byte(stream), int32(len(t.Partitions)))
	r, err := s.routeOf(target{topic: topic, index: idx}, forwarded)
	if err != nil || !r.local {
		return nil, r, err
	}
	p, err := s.cluster.Partition(topic, idx)
	if err != nil {
		return nil, route{}, s.partitionError(topic, idx, err)
	}
	return p, r, nil
}

func (s *Service) topic(name string, create bool) (*cluster.Topic, error) {
	if name == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("topic name is empty"))
	}
	t, ok := s.cluster.Topic(name)
	if !ok {
		if !create || !s.cfg.AutoCreateTopics {
			return nil, withInfo(connect.CodeNotFound, reasonTopicNotFound, name, "", fmt.Errorf("topic %q does not exist", name))
		}
		var err error
		t, err = s.cluster.CreateTopic(name, s.cfg.DefaultPartitions, map[string]string{"cleanup.policy": "stream"}, false)
		if errors.Is(err, cluster.ErrTopicExists) {
			t, ok = s.cluster.Topic(name) // created concurrently
			if !ok {
				return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("topic %q was deleted while being created", name))
			}
		} else if err != nil {
			return nil, toConnectError(err)
		}
		if err == nil {
			s.logger.Info("event store created topic", "topic", name, "partitions", s.cfg.DefaultPartitions)
		}
	}
	if strings.TrimSpace(t.Configs["cleanup.policy"]) != "stream" {
		return nil, withInfo(connect.CodeFailedPrecondition, reasonNotEventStore, name, "", fmt.Errorf(
			"topic %q has cleanup.policy=%s; the event store needs cleanup.policy=stream (cairn topic alter-config %s --set cleanup.policy=stream)",
			name, policyOf(t), name))
	}
	return t, nil
}

func policyOf(t *cluster.Topic) string {
	if v, ok := t.Configs["cleanup.policy"]; ok {
		return v
	}
	return "delete"
}

// write appends records to p and waits until they are acknowledged as
// every internal writer's are: committed on a replicated partition, durable
// on a single-writer one.
func (s *Service) write(ctx context.Context, p *partition.Partition, recs []batch.Record) (partition.AppendResult, error) {
	whole := batch.Build(recs, batch.None)
	var res partition.AppendResult
	// An AppendMulti holding the stream ends within a few round trips.
	err := s.whileBusy(ctx, p, func() error {
		var err error
		res, err = p.Append(slices.Clone(whole))
		return err
	})
	if errors.Is(err, streams.ErrStreamDeleted) {
		return res, withInfo(connect.CodeFailedPrecondition, reasonStreamDeleted, p.Topic(), string(recs[0].Key), err)
	}
	if err != nil {
		return res, s.partitionError(p.Topic(), p.Index(), err)
	}
	if err := p.WaitAppended(ctx, res, true); err != nil {
		return res, s.partitionError(p.Topic(), p.Index(), err)
	}
	return res, nil
}

func parseExpected(e *eventstorev1.ExpectedRevision) streams.Expected {
	switch k := e.GetKind().(type) {
	case *eventstorev1.ExpectedRevision_NoStream:
		if k.NoStream {
			return streams.Expected{Kind: streams.ExpectNoStream}
		}
	case *eventstorev1.ExpectedRevision_StreamExists:
		if k.StreamExists {
			return streams.Expected{Kind: streams.ExpectExists}
		}
	case *eventstorev1.ExpectedRevision_Exact:
		return streams.Exact(int64(k.Exact))
	}
	return streams.Any
}

func expectedProto(e streams.Expected) *eventstorev1.ExpectedRevision {
	switch e.Kind {
	case streams.ExpectNoStream:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	case streams.ExpectExists:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_StreamExists{StreamExists: true}}
	case streams.ExpectExact:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: uint64(e.Revision)}}
	}
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Any{Any: true}}
}

// Append implements the API.
func (s *Service) Append(ctx context.Context, req *connect.Request[eventstorev1.AppendRequest]) (_ *connect.Response[eventstorev1.AppendResponse], err error) {
	started := s.clock.Now()
	duplicate, served := false, true
	defer func() {
		if served {
			countAppend(duplicate, err)
			appendSeconds.Observe(s.clock.Now().Sub(started).Seconds())
		}
	}()
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpWrite, m.GetTopic()); err != nil {
		return nil, err
	}
	if err := s.authorizeCreate(ctx, req.Peer(), m.GetTopic()); err != nil {
		return nil, err
	}
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), true, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	if p == nil {
		served = false // counted by the leader
		return forward(ctx, s, r, "Append", m, eventstorev1connect.EventStoreClient.Append)
	}
	recs, err := eventRecords(m.GetTopic(), m.GetStream(), parseExpected(m.GetExpectedRevision()), m.GetEvents(), s.clock.Now(), s.ids)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	res, err := s.write(ctx, p, recs)
	if err != nil {
		return nil, err
	}
	if len(res.Streams) != 1 {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("append to %q gave %d stream results", m.GetStream(), len(res.Streams)))
	}
	a := res.Streams[0]
	duplicate = res.Duplicate
	return connect.NewResponse(&eventstorev1.AppendResponse{
		FirstRevision: uint64(a.First),
		LastRevision:  uint64(a.Last),
		Position:      &eventstorev1.Position{Partition: p.Index(), Offset: a.LastOffset},
		Duplicate:     res.Duplicate,
	}), nil
}

// GetStreamMetadata implements the API.
func (s *Service) GetStreamMetadata(ctx context.Context, req *connect.Request[eventstorev1.GetStreamMetadataRequest]) (*connect.Response[eventstorev1.GetStreamMetadataResponse], error) {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpDescribe, m.GetTopic()); err != nil {
		return nil, err
	}
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), false, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return forward(ctx, s, r, "GetStreamMetadata", m, eventstorev1connect.EventStoreClient.GetStreamMetadata)
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
	resp := &eventstorev1.GetStreamMetadataResponse{
		Metadata:     metadataProto(st.Metadata),
		SoftDeleted:  st.SoftDeleted,
		HardDeleted:  st.HardDeleted,
		LastRevision: lastDurable(x, m.GetStream(), st, p.HighWatermark()),
	}
	return connect.NewResponse(resp), nil
}

// SetStreamMetadata implements the API.
func (s *Service) SetStreamMetadata(ctx context.Context, req *connect.Request[eventstorev1.SetStreamMetadataRequest]) (*connect.Response[eventstorev1.SetStreamMetadataResponse], error) {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpAlter, m.GetTopic()); err != nil {
		return nil, err
	}
	if err := s.authorizeCreate(ctx, req.Peer(), m.GetTopic()); err != nil {
		return nil, err
	}
	md, err := metadataFromProto(m.GetMetadata())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), true, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return forward(ctx, s, r, "SetStreamMetadata", m, eventstorev1connect.EventStoreClient.SetStreamMetadata)
	}
	res, err := s.write(ctx, p, []batch.Record{opRecord(m.GetStream(), streams.OpMetadata, streams.EncodeMetadata(md), nil, s.clock.Now())})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&eventstorev1.SetStreamMetadataResponse{
		Position: &eventstorev1.Position{Partition: p.Index(), Offset: res.LastOffset},
	}), nil
}

// DeleteStream implements the API.
func (s *Service) DeleteStream(ctx context.Context, req *connect.Request[eventstorev1.DeleteStreamRequest]) (*connect.Response[eventstorev1.DeleteStreamResponse], error) {
	m := req.Msg
	if err := s.authorize(ctx, req.Peer(), acl.OpDelete, m.GetTopic()); err != nil {
		return nil, err
	}
	p, r, err := s.streamPartition(m.GetTopic(), m.GetStream(), false, isForwarded(req.Header()))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return forward(ctx, s, r, "DeleteStream", m, eventstorev1connect.EventStoreClient.DeleteStream)
	}
	op := streams.OpDelete
	if m.GetHard() {
		op = streams.OpHardDelete
	}
	var expected *streams.Expected
	if m.GetExpectedRevision() != nil {
		e := parseExpected(m.GetExpectedRevision())
		expected = &e
	}
	res, err := s.write(ctx, p, []batch.Record{opRecord(m.GetStream(), op, nil, expected, s.clock.Now())})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&eventstorev1.DeleteStreamResponse{
		Position: &eventstorev1.Position{Partition: p.Index(), Offset: res.LastOffset},
	}), nil
}

func metadataProto(md streams.Metadata) *eventstorev1.StreamMetadata {
	out := &eventstorev1.StreamMetadata{}
	if md.MaxCount >= 0 {
		v := uint64(md.MaxCount)
		out.MaxCount = &v
	}
	if md.TruncateBefore >= 0 {
		v := uint64(md.TruncateBefore)
		out.TruncateBefore = &v
	}
	if md.MaxAgeMs >= 0 {
		out.MaxAge = durationpbNew(time.Duration(md.MaxAgeMs) * time.Millisecond)
	}
	return out
}

func metadataFromProto(in *eventstorev1.StreamMetadata) (streams.Metadata, error) {
	md := streams.NoMetadata
	if in == nil {
		return md, nil
	}
	const revisionMax = 1 << 62
	if in.MaxCount != nil {
		if *in.MaxCount > revisionMax {
			return md, fmt.Errorf("max_count %d is too large", *in.MaxCount)
		}
		md.MaxCount = int64(*in.MaxCount)
	}
	if in.TruncateBefore != nil {
		if *in.TruncateBefore > revisionMax {
			return md, fmt.Errorf("truncate_before %d is too large", *in.TruncateBefore)
		}
		md.TruncateBefore = int64(*in.TruncateBefore)
	}
	if in.MaxAge != nil {
		if err := in.MaxAge.CheckValid(); err != nil {
			return md, fmt.Errorf("max_age: %w", err)
		}
		d := in.MaxAge.AsDuration()
		if d < time.Millisecond {
			return md, fmt.Errorf("max_age %s: at least 1ms", d)
		}
		md.MaxAgeMs = d.Milliseconds()
	}
	return md, nil
}
