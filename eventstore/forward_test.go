package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/streams"
)

// fakePlacement places partitions as a test says; a partition it was told
// nothing of is led here, as on a single node.
type fakePlacement struct {
	self int32

	mu      sync.Mutex
	leaders map[string]cluster.Leader // by partitionName
	brokers []cluster.Broker
	changed chan struct{}
}

func newFakePlacement(self int32) *fakePlacement {
	return &fakePlacement{self: self, leaders: map[string]cluster.Leader{}, changed: make(chan struct{})}
}

func (f *fakePlacement) Leader(topic string, index int32) (cluster.Leader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.leaders[partitionName(topic, index)]; ok {
		return l, nil
	}
	return cluster.Leader{Node: f.self, Epoch: 1, Local: true}, nil
}

func (f *fakePlacement) Brokers() []cluster.Broker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cluster.Broker(nil), f.brokers...)
}

func (f *fakePlacement) NodeID() int32 { return f.self }

func (f *fakePlacement) LeadersChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// lead makes node the leader of topic's partition index as this placement
// sees it (the node itself: led here), and wakes LeadersChanged watchers.
func (f *fakePlacement) lead(topic string, index, node int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaders[partitionName(topic, index)] = cluster.Leader{Node: node, Epoch: 2, Local: node == f.self}
	close(f.changed)
	f.changed = make(chan struct{})
}

// esNode is one Service on its own single-node cluster and its own
// loopback HTTP server, placed by a fakePlacement.
type esNode struct {
	id       int32
	cluster  *cluster.Cluster
	service  *Service
	place    *fakePlacement
	addr     string
	requests atomic.Int64 // API calls this node's HTTP server received
	client   eventstorev1connect.EventStoreClient
}

func startESNode(t *testing.T, id int32) *esNode {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	ccfg := cluster.DefaultConfig(t.TempDir())
	ccfg.NodeID = id
	cl, err := cluster.Open(env.Env{Logger: logger}.Complete(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &esNode{id: id, cluster: cl, place: newFakePlacement(id)}
	n.service = New(cl, Config{AutoCreateTopics: true}, logger)
	n.service.placement = n.place
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	path, handler := n.service.Handler()
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.requests.Add(1)
		handler.ServeHTTP(w, r)
	}))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Callers speak gRPC, and nodes forward with Connect's protocol: the
	// leader's answer must reach them unchanged across the two.
	clientProtocols := new(http.Protocols)
	clientProtocols.SetUnencryptedHTTP2(true)
	httpClient := &http.Client{Transport: &http.Transport{Protocols: clientProtocols}}
	n.client = eventstorev1connect.NewEventStoreClient(httpClient, "http://"+n.addr, connect.WithGRPC())
	t.Cleanup(func() {
		httpClient.CloseIdleConnections()
		n.service.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("node %d: close http: %v", id, err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("node %d: serve: %v", id, err)
		}
		if err := cl.Close(); err != nil {
			t.Errorf("node %d: close cluster: %v", id, err)
		}
	})
	return n
}

// pair starts a leader (node 1) and a follower (node 2), both knowing both
// addresses, with topic created on both (as the metadata group would) and
// every partition of it led by the leader as the follower sees it.
func pair(t *testing.T, topic string, partitions int32) (leader, follower *esNode) {
	t.Helper()
	leader, follower = startESNode(t, 1), startESNode(t, 2)
	brokers := []cluster.Broker{{NodeID: 1, HTTPAddr: leader.addr}, {NodeID: 2, HTTPAddr: follower.addr}}
	for _, n := range []*esNode{leader, follower} {
		n.place.brokers = brokers
		if _, err := n.cluster.CreateTopic(topic, partitions, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range partitions {
		follower.place.lead(topic, i, leader.id)
	}
	return leader, follower
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func appendTo(ctx context.Context, n *esNode, topic, stream string, expected *eventstorev1.ExpectedRevision, types ...string) (*eventstorev1.AppendResponse, error) {
	req := &eventstorev1.AppendRequest{Topic: topic, Stream: stream, ExpectedRevision: expected}
	for _, typ := range types {
		req.Events = append(req.Events, &eventstorev1.Event{Type: typ, Data: []byte(`{}`)})
	}
	resp, err := n.client.Append(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func exactRevision(rev uint64) *eventstorev1.ExpectedRevision {
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: rev}}
}

// localEnd is the high watermark of the node's own copy of a partition.
func localEnd(t *testing.T, n *esNode, topic string, index int32) int64 {
	t.Helper()
	p, err := n.cluster.Partition(topic, index)
	if err != nil {
		t.Fatal(err)
	}
	return p.HighWatermark()
}

// wantUnavailable fails unless err is UNAVAILABLE with a message containing want.
func wantUnavailable(t *testing.T, err error, want string) {
	t.Helper()
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want UNAVAILABLE saying %q", err, want)
	}
}

// TestForwardedAppendsLandOnTheLeader: appends, metadata and deletions sent
// to a node that does not lead the stream's partition are written by the
// leader, whose stream index checks expected revisions; a wrong one fails
// with the leader's error, detail included.
func TestForwardedAppendsLandOnTheLeader(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	ctx := testCtx(t)
	noStream := &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	first, err := appendTo(ctx, follower, "orders", "order-1", noStream, "Placed")
	if err != nil {
		t.Fatal(err)
	}
	second, err := appendTo(ctx, follower, "orders", "order-1", exactRevision(0), "Paid", "Shipped")
	if err != nil {
		t.Fatal(err)
	}
	if first.LastRevision != 0 || second.FirstRevision != 1 || second.LastRevision != 2 {
		t.Fatalf("revisions %d, then %d..%d; want 0, then 1..2", first.LastRevision, second.FirstRevision, second.LastRevision)
	}
	_, err = appendTo(ctx, follower, "orders", "order-1", exactRevision(0), "Cancelled")
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		t.Fatalf("append at a stale revision: %v, want FAILED_PRECONDITION", err)
	}
	if w := wrongRevisionDetail(ce); w == nil || w.ActualRevision == nil || *w.ActualRevision != 2 {
		t.Fatalf("append at a stale revision: detail %v, want actual revision 2", w)
	}
	if _, err := follower.client.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{
		Topic: "orders", Stream: "order-1", Metadata: &eventstorev1.StreamMetadata{TruncateBefore: ptr(uint64(1))}})); err != nil {
		t.Fatal(err)
	}
	if _, err := follower.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{
		Topic: "orders", Stream: "order-2", ExpectedRevision: exactRevision(5)})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("delete at a wrong revision: %v, want FAILED_PRECONDITION", err)
	}

	md, err := leader.client.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "orders", Stream: "order-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if md.Msg.GetLastRevision() != 2 || md.Msg.GetMetadata().GetTruncateBefore() != 1 {
		t.Fatalf("leader's stream: last revision %d, truncate_before %d; want 2 and 1", md.Msg.GetLastRevision(), md.Msg.GetMetadata().GetTruncateBefore())
	}
	if end := localEnd(t, follower, "orders", 0); end != 0 {
		t.Fatalf("the follower's own partition holds %d records; everything belongs on the leader", end)
	}
}

func wrongRevisionDetail(ce *connect.Error) *eventstorev1.WrongExpectedRevision {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if w, ok := v.(*eventstorev1.WrongExpectedRevision); ok {
				return w
			}
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// TestForwardedReadsSeeTheLeader: stream and topic reads sent to a follower
// answer with the leader's events and metadata.
func TestForwardedReadsSeeTheLeader(t *testing.T) {
	leader, follower := pair(t, "orders", 2)
	ctx := testCtx(t)
	for _, stream := range []string{"order-1", "order-2", "order-3"} {
		if _, err := appendTo(ctx, leader, "orders", stream, nil, "Placed", "Paid"); err != nil {
			t.Fatal(err)
		}
	}
	read, err := follower.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "orders", Stream: "order-2"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := eventTypes(read.Msg.GetEvents()); got != "Placed,Paid" || !read.Msg.GetEndOfStream() {
		t.Fatalf("stream read through the follower: %s (end %v), want Placed,Paid to the end", got, read.Msg.GetEndOfStream())
	}
	md, err := follower.client.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "orders", Stream: "order-3"}))
	if err != nil {
		t.Fatal(err)
	}
	if md.Msg.LastRevision == nil || *md.Msg.LastRevision != 1 {
		t.Fatalf("metadata through the follower: last revision %v, want 1", md.Msg.LastRevision)
	}
	topic, err := follower.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "orders"}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topic.Msg.GetEvents()); n != 6 || !topic.Msg.GetEndOfTopic() {
		t.Fatalf("topic read through the follower: %d events (end %v), want all 6", n, topic.Msg.GetEndOfTopic())
	}
	_, err = follower.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "orders", Stream: "order-9"}))
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing stream through the follower: %v, want the leader's NOT_FOUND", err)
	}
}

func eventTypes(events []*eventstorev1.RecordedEvent) string {
	types := make([]string, len(events))
	for i, e := range events {
		types[i] = e.GetType()
	}
	return strings.Join(types, ",")
}

// streamIn returns a stream name that lands in partition index of a topic
// with count partitions.
func streamIn(t *testing.T, index, count int32, n int) string {
	t.Helper()
	for i := range 1000 {
		name := fmt.Sprintf("s%d-%d", index, i)
		if streams.Partition([]byte(name), count) == index {
			if n == 0 {
				return name
			}
			n--
		}
	}
	t.Fatalf("no stream found for partition %d of %d", index, count)
	return ""
}

// TestTopicReadAcrossLeaders: a topic read through a node leading some of
// the topic's partitions reads those here and the others through their
// leader, page by page, with positions that resume exactly where the page
// ended.
func TestTopicReadAcrossLeaders(t *testing.T) {
	leader, follower := pair(t, "orders", 2)
	ctx := testCtx(t)
	follower.place.lead("orders", 0, follower.id)
	here, there := streamIn(t, 0, 2, 0), streamIn(t, 1, 2, 0)
	for _, stream := range []string{here, there} {
		if _, err := appendTo(ctx, follower, "orders", stream, nil, "A", "B", "C"); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := localEnd(t, follower, "orders", 0), localEnd(t, leader, "orders", 1); a != 3 || b != 3 {
		t.Fatalf("records on their leaders: %d on partition 0 here, %d on partition 1 there; want 3 each", a, b)
	}

	read := func(from []*eventstorev1.Position) *eventstorev1.ReadTopicResponse {
		t.Helper()
		resp, err := follower.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "orders", From: from, MaxCount: 4}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg
	}
	first := read(nil)
	if got := describeEvents(first.GetEvents()); got != here+"@0 "+here+"@1 "+here+"@2 "+there+"@0" || first.GetEndOfTopic() {
		t.Fatalf("first page: %s (end %v)", got, first.GetEndOfTopic())
	}
	if got := describePositions(first.GetNext()); got != "0:3 1:1" {
		t.Fatalf("first page ends at %s, want 0:3 1:1", got)
	}
	second := read(first.GetNext())
	if got := describeEvents(second.GetEvents()); got != there+"@1 "+there+"@2" || !second.GetEndOfTopic() {
		t.Fatalf("second page: %s (end %v)", got, second.GetEndOfTopic())
	}
	if got := describePositions(second.GetNext()); got != "0:3 1:3" {
		t.Fatalf("second page ends at %s, want 0:3 1:3", got)
	}
}

// TestTopicSubscriptionAcrossLeaders: a topic subscription through a node
// leading some of the topic's partitions serves those here and relays the
// others from their leader, says CaughtUp once when both have caught up,
// goes on live from both, and ends with UNAVAILABLE when a leader changes.
func TestTopicSubscriptionAcrossLeaders(t *testing.T) {
	_, follower := pair(t, "orders", 2)
	ctx := testCtx(t)
	follower.place.lead("orders", 0, follower.id)
	here, there := streamIn(t, 0, 2, 0), streamIn(t, 1, 2, 0)
	for _, stream := range []string{here, there} {
		if _, err := appendTo(ctx, follower, "orders", stream, nil, "A", "B"); err != nil {
			t.Fatal(err)
		}
	}
	sub := subscribe(ctx, t, follower, &eventstorev1.SubscribeRequest{Topic: "orders"})
	got := map[string][]uint64{}
	for range 4 {
		ev := sub.next(ctx, t)
		got[ev.GetStream()] = append(got[ev.GetStream()], ev.GetRevision())
	}
	select {
	case <-sub.caught:
	case <-ctx.Done():
		t.Fatal("no CaughtUp")
	}
	for _, stream := range []string{here, there} {
		if _, err := appendTo(ctx, follower, "orders", stream, exactRevision(1), "C"); err != nil {
			t.Fatal(err)
		}
		ev := sub.next(ctx, t)
		got[ev.GetStream()] = append(got[ev.GetStream()], ev.GetRevision())
	}
	if fmt.Sprint(got[here]) != "[0 1 2]" || fmt.Sprint(got[there]) != "[0 1 2]" {
		t.Fatalf("delivered %v, want revisions 0 1 2 of %s and %s", got, here, there)
	}
	follower.place.lead("orders", 1, -1)
	wantUnavailable(t, sub.end(ctx, t), "leader of")
}

func describeEvents(events []*eventstorev1.RecordedEvent) string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s@%d", e.GetStream(), e.GetRevision())
	}
	return strings.Join(out, " ")
}

func describePositions(positions []*eventstorev1.Position) string {
	out := make([]string, len(positions))
	for i, p := range positions {
		out[i] = fmt.Sprintf("%d:%d", p.GetPartition(), p.GetOffset())
	}
	return strings.Join(out, " ")
}

// TestForwardedPartitionReadRefusedByNonLeader: a forwarded read of named
// partitions is served only by their leader.
func TestForwardedPartitionReadRefusedByNonLeader(t *testing.T) {
	leader, follower := pair(t, "orders", 2)
	ctx := testCtx(t)
	req := connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "orders"})
	req.Header().Set(forwardedHeader, "1")
	req.Header().Set(partitionsHeader, "1")
	_, err := follower.client.ReadTopic(ctx, req)
	wantUnavailable(t, err, fmt.Sprintf("not the leader of orders-1; leader node 1 at %s", leader.addr))
	req.Header().Set(partitionsHeader, "1,0")
	if _, err := leader.client.ReadTopic(ctx, req); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("partitions out of order: %v, want INVALID_ARGUMENT", err)
	}
}

// TestGroupRoutes: partitions are grouped by where they are served, in the
// order of each group's first partition (pure).
func TestGroupRoutes(t *testing.T) {
	here, two, three := route{local: true, node: 1}, route{node: 2, addr: "b:1"}, route{node: 3, addr: "c:1"}
	got := groupRoutes([]int32{0, 1, 2, 3, 4}, []route{two, here, two, three, here})
	want := []routeGroup{{route: two, partitions: []int32{0, 2}}, {route: here, partitions: []int32{1, 4}}, {route: three, partitions: []int32{3}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestParsePartitions: the partitions header names ascending, distinct
// partitions of the topic (pure).
func TestParsePartitions(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []int32 // nil: refused
	}{
		{"0", []int32{0}},
		{"0,2,3", []int32{0, 2, 3}},
		{formatPartitions([]int32{1, 3}), []int32{1, 3}},
		{"4", nil},
		{"-1", nil},
		{"2,1", nil},
		{"1,1", nil},
		{"1,", nil},
		{"x", nil},
	} {
		got, err := parsePartitions(tc.value, 4)
		if tc.want == nil {
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Errorf("%q: got %v, %v; want INVALID_ARGUMENT", tc.value, got, err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.value, got, err, tc.want)
		}
	}
}

// TestForwardedOnceOnly: two nodes that each take the other for the
// leader do not pass a call back and forth: the node a call was forwarded
// to answers UNAVAILABLE, naming the leader it knows, and the caller gets
// that answer. A partition with no known leader is UNAVAILABLE at once.
func TestForwardedOnceOnly(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	ctx := testCtx(t)
	leader.place.brokers = follower.place.brokers
	leader.place.lead("orders", 0, follower.id)
	_, err := appendTo(ctx, follower, "orders", "order-1", nil, "Placed")
	wantUnavailable(t, err, fmt.Sprintf("not the leader of orders-0; leader node 2 at %s", follower.addr))
	if f, l := follower.requests.Load(), leader.requests.Load(); f != 1 || l != 1 {
		t.Fatalf("calls received: follower %d, leader %d; want one each", f, l)
	}

	follower.place.lead("orders", 0, -1)
	_, err = appendTo(ctx, follower, "orders", "order-1", nil, "Placed")
	wantUnavailable(t, err, "not the leader of orders-0; no leader known")
	_, err = follower.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "orders", Stream: "order-1"}))
	wantUnavailable(t, err, "no leader known")
	if l := leader.requests.Load(); l != 1 {
		t.Fatalf("the leader received %d calls; a call with no leader known goes nowhere", l)
	}
}

// subscription collects what a subscription delivers, on its own goroutine.
type subscription struct {
	events chan *eventstorev1.RecordedEvent // buffered: the test reads them
	caught chan struct{}                    // closed at CaughtUp
	done   chan error                       // the stream's end
}

func subscribe(ctx context.Context, t *testing.T, n *esNode, req *eventstorev1.SubscribeRequest) *subscription {
	t.Helper()
	stream, err := n.client.Subscribe(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	s := &subscription{events: make(chan *eventstorev1.RecordedEvent, 64), caught: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer stream.Close()
		for stream.Receive() {
			switch m := stream.Msg(); {
			case m.GetEvent() != nil:
				s.events <- m.GetEvent()
			case m.GetCaughtUp() != nil:
				close(s.caught)
			}
		}
		s.done <- stream.Err()
	}()
	return s
}

func (s *subscription) next(ctx context.Context, t *testing.T) *eventstorev1.RecordedEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.done:
		t.Fatalf("subscription ended: %v", err)
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return nil
}

func (s *subscription) end(ctx context.Context, t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return nil
}

// TestForwardedSubscription: a stream subscription through a follower
// catches up with the leader's events and goes on live; when the
// follower learns of a new leader the relay ends with UNAVAILABLE, so the
// client resubscribes from its last revision.
func TestForwardedSubscription(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	ctx := testCtx(t)
	if _, err := appendTo(ctx, leader, "orders", "order-1", nil, "Placed"); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(ctx, t, follower, &eventstorev1.SubscribeRequest{Topic: "orders", Stream: "order-1"})
	if ev := sub.next(ctx, t); ev.GetType() != "Placed" || ev.GetRevision() != 0 {
		t.Fatalf("caught up with %s@%d", ev.GetType(), ev.GetRevision())
	}
	select {
	case <-sub.caught:
	case <-ctx.Done():
		t.Fatal("no CaughtUp through the relay")
	}
	if _, err := appendTo(ctx, follower, "orders", "order-1", exactRevision(0), "Paid"); err != nil {
		t.Fatal(err)
	}
	if ev := sub.next(ctx, t); ev.GetType() != "Paid" || ev.GetRevision() != 1 {
		t.Fatalf("live %s@%d, want Paid@1", ev.GetType(), ev.GetRevision())
	}
	follower.place.lead("orders", 0, follower.id)
	wantUnavailable(t, sub.end(ctx, t), "leader of orders-0 changed from node 1 to node 2")
}

// TestTopicSubscriptionRelayed: a topic subscription through a node that
// leads none of the topic's partitions is relayed from the one node that
// leads them all.
func TestTopicSubscriptionRelayed(t *testing.T) {
	leader, follower := pair(t, "orders", 3)
	ctx := testCtx(t)
	sub := subscribe(ctx, t, follower, &eventstorev1.SubscribeRequest{Topic: "orders"})
	select {
	case <-sub.caught:
	case <-ctx.Done():
		t.Fatal("no CaughtUp through the relay")
	}
	seen := map[string]bool{}
	for i := range 5 {
		stream := fmt.Sprintf("order-%d", i)
		if _, err := appendTo(ctx, leader, "orders", stream, nil, "Placed"); err != nil {
			t.Fatal(err)
		}
		seen[sub.next(ctx, t).GetStream()] = true
	}
	if len(seen) != 5 {
		t.Fatalf("relayed events of %d streams, want 5", len(seen))
	}
}

// TestLocalSubscriptionEndsWhenLeadershipMoves: a subscription served here
// ends with UNAVAILABLE, naming the new leader, once this node no longer
// leads the partition, rather than serving a follower's copy.
func TestLocalSubscriptionEndsWhenLeadershipMoves(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	ctx := testCtx(t)
	leader.place.brokers = follower.place.brokers
	sub := subscribe(ctx, t, leader, &eventstorev1.SubscribeRequest{Topic: "orders", Stream: "order-1"})
	select {
	case <-sub.caught:
	case <-ctx.Done():
		t.Fatal("no CaughtUp")
	}
	leader.place.lead("orders", 0, follower.id)
	wantUnavailable(t, sub.end(ctx, t), fmt.Sprintf("not the leader of orders-0; leader node 2 at %s", follower.addr))
}

// TestNotLeaderMidCall: a partition that loses its leadership during an
// append (partition.ErrNotLeader) is answered UNAVAILABLE, naming the
// leader now known.
func TestNotLeaderMidCall(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	leader.place.brokers = follower.place.brokers
	leader.place.lead("orders", 0, follower.id)
	err := leader.service.partitionError("orders", 0, fmt.Errorf("wait for orders-0: %w", partition.ErrNotLeader))
	wantUnavailable(t, err, fmt.Sprintf("not the leader of orders-0; leader node 2 at %s", follower.addr))
	if got := toConnectError(partition.ErrNotLeader); connect.CodeOf(got) != connect.CodeUnavailable {
		t.Fatalf("ErrNotLeader maps to %v, want UNAVAILABLE", connect.CodeOf(got))
	}
}

// TestRouteTo: where a call about one partition goes (pure).
func TestRouteTo(t *testing.T) {
	brokers := []cluster.Broker{{NodeID: 1, HTTPAddr: "10.0.0.1:8080"}, {NodeID: 2, HTTPAddr: "10.0.0.2:8080"}, {NodeID: 3}}
	for _, tc := range []struct {
		name      string
		leader    cluster.Leader
		forwarded bool
		want      route  // when no error
		wantErr   string // UNAVAILABLE with this message
	}{
		{"led here", cluster.Leader{Node: 1, Local: true}, false, route{local: true, node: 1}, ""},
		{"led here, forwarded", cluster.Leader{Node: 1, Local: true}, true, route{local: true, node: 1}, ""},
		{"led elsewhere", cluster.Leader{Node: 2}, false, route{node: 2, addr: "10.0.0.2:8080"}, ""},
		{"led elsewhere, forwarded", cluster.Leader{Node: 2}, true, route{}, "not the leader of t-0; leader node 2 at 10.0.0.2:8080"},
		{"no leader", cluster.Leader{Node: -1}, false, route{}, "not the leader of t-0; no leader known"},
		{"elected here, not ready", cluster.Leader{Node: 1}, false, route{}, "not the leader of t-0; leader node 1 at 10.0.0.1:8080"},
		{"leader without an address", cluster.Leader{Node: 3}, false, route{}, "not the leader of t-0; leader node 3 at an unknown address"},
		{"leader not a broker", cluster.Leader{Node: 4}, false, route{}, "not the leader of t-0; leader node 4 at an unknown address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := routeTo("t-0", tc.leader, 1, brokers, tc.forwarded)
			if tc.wantErr != "" {
				if connect.CodeOf(err) != connect.CodeUnavailable || connectMessage(err) != tc.wantErr {
					t.Fatalf("got %v, want UNAVAILABLE: %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestTopicRoute: a call over a whole topic goes where every partition is
// led, or nowhere (pure).
func TestTopicRoute(t *testing.T) {
	brokers := []cluster.Broker{{NodeID: 1, HTTPAddr: "a:1"}, {NodeID: 2, HTTPAddr: "b:1"}, {NodeID: 3, HTTPAddr: "c:1"}}
	here, two, three := cluster.Leader{Node: 1, Local: true}, cluster.Leader{Node: 2}, cluster.Leader{Node: 3}
	for _, tc := range []struct {
		name    string
		leaders []cluster.Leader
		want    route
		wantErr string
	}{
		{"all here", []cluster.Leader{here, here}, route{local: true, node: 1}, ""},
		{"all on node 2", []cluster.Leader{two, two, two}, route{node: 2, addr: "b:1"}, ""},
		{"split here and there", []cluster.Leader{here, two}, route{}, `partitions of topic "t" are led by different nodes (t-0 by node 1, t-1 by node 2)`},
		{"split elsewhere", []cluster.Leader{two, two, three}, route{}, `(t-0 by node 2, t-2 by node 3)`},
		{"one without a leader", []cluster.Leader{two, {Node: -1}}, route{}, "not the leader of t-1; no leader known"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			partitions := make([]int32, len(tc.leaders))
			for i := range partitions {
				partitions[i] = int32(i)
			}
			got, err := topicRoute("t", partitions, tc.leaders, 1, brokers, false)
			if tc.wantErr != "" {
				if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(connectMessage(err), tc.wantErr) {
					t.Fatalf("got %v, want UNAVAILABLE: %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestClientResumesAcrossLeaderChange: the Go client subscribed through a
// follower rides out a leader change: the relay ends with UNAVAILABLE, the
// client retries while no leader is known, and once the leader is back it
// goes on from the next revision, with nothing repeated or skipped and no
// second CaughtUp.
func TestClientResumesAcrossLeaderChange(t *testing.T) {
	leader, follower := pair(t, "orders", 1)
	ctx := testCtx(t)
	c, err := client.New("http://"+follower.addr, client.WithRetry(50, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Append(ctx, "orders", "order-1", client.Any, client.EventData{Type: "Placed"}, client.EventData{Type: "Paid"}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "orders", "order-1")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	record := func(m client.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("recv after %v: %v", got, err)
		}
		if m.Kind == client.MessageEvent {
			got = append(got, fmt.Sprintf("%s@%d", m.Event.Type, m.Event.Revision))
		} else {
			got = append(got, m.Kind.String())
		}
	}
	for range 3 {
		record(sub.Recv())
	}

	calls := follower.requests.Load()
	follower.place.lead("orders", 0, -1)
	type received struct {
		m   client.Message
		err error
	}
	next := make(chan received, 1)
	go func() { // Recv is where the client resubscribes
		m, err := sub.Recv()
		next <- received{m, err}
	}()
	// The client's resubscriptions reach the follower, which knows no
	// leader and answers UNAVAILABLE; wait for one (bounded).
	for i := 0; follower.requests.Load() == calls; i++ {
		if i == 500 {
			t.Fatal("the client never resubscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := appendTo(ctx, leader, "orders", "order-1", exactRevision(1), "Shipped"); err != nil {
		t.Fatal(err)
	}
	follower.place.lead("orders", 0, leader.id)
	r := <-next
	record(r.m, r.err)
	if want := "Placed@0 Paid@1 caught-up Shipped@2"; strings.Join(got, " ") != want {
		t.Fatalf("delivered %s, want %s", strings.Join(got, " "), want)
	}
}

// TestForwardErrorCodes: a leader that died mid-call (the client reports a
// response cut short as UNKNOWN) is UNAVAILABLE to the caller, who retries;
// the caller's own cancellation keeps its code; the leader's own errors
// pass unchanged.
func TestForwardErrorCodes(t *testing.T) {
	r := route{node: 3, addr: "127.0.0.1:1"}
	cut := connect.NewError(connect.CodeUnknown, errors.New("read message: unexpected EOF"))
	if got := connect.CodeOf(forwardError(context.Background(), r, cut)); got != connect.CodeUnavailable {
		t.Fatalf("leader died mid-call: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := connect.CodeOf(forwardError(ctx, r, connect.NewError(connect.CodeCanceled, context.Canceled))); got != connect.CodeCanceled {
		t.Fatalf("caller cancelled: %v", got)
	}
	wire := connect.NewWireError(connect.CodeFailedPrecondition, errors.New("wrong expected revision"))
	if got := forwardError(context.Background(), r, wire); got != wire {
		t.Fatalf("the leader's error changed: %v", got)
	}
}
