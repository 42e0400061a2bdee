package eventstore_test

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestIndexRebuiltFromLog: with every stream index deleted, a restart
// rebuilds them from the log: reads, revisions, ids (for retries) and
// metadata are as before, and appends continue at the right revision.
func TestIndexRebuiltFromLog(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.srv.Cluster().CreateTopic("orders", 4, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	var retry *eventstorev1.Event
	for i := range 40 {
		stream := fmt.Sprintf("order-%d", i%10)
		e := ev("Placed", fmt.Sprintf(`{"i":%d}`, i))
		e.Id = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if i == 33 {
			retry = e
		}
		n.mustAppend(ctx, "orders", stream, nil, e)
		want[stream] = append(want[stream], e.Id)
	}
	maxCount := uint64(2)
	if _, err := n.client.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{Topic: "orders", Stream: "order-9",
		Metadata: &eventstorev1.StreamMetadata{MaxCount: &maxCount}})); err != nil {
		t.Fatal(err)
	}
	n.stop()
	if removed := n.removeIndexes(); removed != 4 {
		t.Fatalf("removed %d index directories, want 4", removed)
	}
	n.start()
	for stream, ids := range want {
		got := n.readAll(ctx, "orders", stream)
		first := 0
		if stream == "order-9" {
			first = len(ids) - 2
		}
		if len(got) != len(ids)-first || !contiguous(revisions(got), uint64(first)) {
			t.Fatalf("%s after rebuild: revisions %v", stream, revisions(got))
		}
		for i, e := range got {
			if e.Id != ids[first+i] {
				t.Fatalf("%s revision %d: id %s, want %s", stream, e.Revision, e.Id, ids[first+i])
			}
		}
	}
	if resp := n.mustAppend(ctx, "orders", "order-3", nil, retry); !resp.Duplicate || resp.FirstRevision != 3 {
		t.Fatalf("retry after rebuild: %v", resp)
	}
	if resp := n.mustAppend(ctx, "orders", "order-3", exact(3), ev("Next", "{}")); resp.FirstRevision != 4 {
		t.Fatalf("append after rebuild got revision %d", resp.FirstRevision)
	}
}

// TestMetadataHonouredAtOnce: max_count, truncate_before, max_age and both
// deletions change what reads return immediately, before any cleaning.
func TestMetadataHonouredAtOnce(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	for i := range 10 {
		n.mustAppend(ctx, "t", "s", nil, ev("E", fmt.Sprint(i)))
	}
	set := func(md *eventstorev1.StreamMetadata) {
		t.Helper()
		if _, err := n.client.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{Topic: "t", Stream: "s", Metadata: md})); err != nil {
			t.Fatal(err)
		}
	}
	u := func(v uint64) *uint64 { return &v }
	set(&eventstorev1.StreamMetadata{MaxCount: u(3)})
	if got := revisions(n.readAll(ctx, "t", "s")); fmt.Sprint(got) != "[7 8 9]" {
		t.Fatalf("max_count 3: %v", got)
	}
	set(&eventstorev1.StreamMetadata{TruncateBefore: u(5)})
	if got := revisions(n.readAll(ctx, "t", "s")); fmt.Sprint(got) != "[5 6 7 8 9]" {
		t.Fatalf("truncate_before 5: %v", got)
	}
	back, err := n.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "t", Stream: "s", Direction: eventstorev1.Direction_DIRECTION_BACKWARDS, MaxCount: 10}))
	if err != nil || fmt.Sprint(revisions(back.Msg.Events)) != "[9 8 7 6 5]" || !back.Msg.EndOfStream {
		t.Fatalf("backwards: %v %v", err, back)
	}
	md, err := n.client.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "t", Stream: "s"}))
	if err != nil || md.Msg.GetMetadata().GetTruncateBefore() != 5 || md.Msg.GetLastRevision() != 9 || md.Msg.Metadata.MaxCount != nil {
		t.Fatalf("metadata %v %v", md, err)
	}
	set(&eventstorev1.StreamMetadata{MaxAge: durationpb.New(time.Millisecond)})
	time.Sleep(20 * time.Millisecond)
	if got := n.readAll(ctx, "t", "s"); len(got) != 0 {
		t.Fatalf("max_age 1ms: %v", revisions(got))
	}
	set(nil)
	if _, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "t", Stream: "s", ExpectedRevision: exact(3)})); wrongRevision(err) == nil {
		t.Fatalf("delete with a wrong expected revision: %v", err)
	}
	if _, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "t", Stream: "s", ExpectedRevision: exact(9)})); err != nil {
		t.Fatal(err)
	}
	if got := n.readAll(ctx, "t", "s"); len(got) != 0 {
		t.Fatalf("after soft delete: %v", revisions(got))
	}
	resp := n.mustAppend(ctx, "t", "s", noStream(), ev("Again", "{}"))
	if resp.FirstRevision != 10 {
		t.Fatalf("after a soft delete the stream continues at %d", resp.FirstRevision)
	}
	if got := revisions(n.readAll(ctx, "t", "s")); fmt.Sprint(got) != "[10]" {
		t.Fatalf("written again: %v", got)
	}
	if _, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "t", Stream: "s", Hard: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "t", Stream: "s"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("read after hard delete: %v", err)
	}
	if _, err := n.append(ctx, "t", "s", nil, ev("Zombie", "{}")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("append after hard delete: %v", err)
	}
	if _, err := n.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "t", Stream: "never"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("read of a stream never written: %v", err)
	}
}

// TestReadTopicFilters: a topic read walks every partition in log order per
// partition, applies the filters, and continues from the positions it returns.
func TestReadTopicFilters(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.srv.Cluster().CreateTopic("shop", 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		typ := []string{"OrderPlaced", "OrderShipped", "StockReserved"}[i%3]
		stream := []string{"order-", "stock-"}[i%3/2] + fmt.Sprint(i%7)
		n.mustAppend(ctx, "shop", stream, nil, ev(typ, fmt.Sprint(i)))
	}
	count := func(f *eventstorev1.Filter) int {
		t.Helper()
		total := 0
		var from []*eventstorev1.Position
		for range 100 {
			resp, err := n.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "shop", From: from, Filter: f, MaxCount: 4}))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.Msg.Events {
				if f != nil && f.EventTypePrefix != "" && e.Type[:len(f.EventTypePrefix)] != f.EventTypePrefix {
					t.Fatalf("filter %v let %s through", f, e.Type)
				}
			}
			total += len(resp.Msg.Events)
			from = resp.Msg.Next
			if resp.Msg.EndOfTopic {
				return total
			}
		}
		t.Fatal("topic read did not end")
		return 0
	}
	for _, tc := range []struct {
		f    *eventstorev1.Filter
		want int
	}{
		{nil, 30},
		{&eventstorev1.Filter{EventTypePrefix: "Order"}, 20},
		{&eventstorev1.Filter{EventTypeRegex: "^(OrderShipped|StockReserved)$"}, 20},
		{&eventstorev1.Filter{StreamPrefix: "stock-"}, 10},
		{&eventstorev1.Filter{StreamPrefix: "order-", EventTypePrefix: "OrderShipped"}, 10},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("filter %v: %d events, want %d", tc.f, got, tc.want)
		}
	}
	if _, err := n.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "shop", Filter: &eventstorev1.Filter{EventTypeRegex: "("}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad regex: %v", err)
	}
	if _, err := n.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "nope"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown topic: %v", err)
	}
}

// TestReadTopicTakesBatchesUpToTheServersCap: a topic holding a batch that
// decompresses past the default cap (64 MiB) but within the server's
// --decompressed-batch-bytes-max, as a Kafka producer may write it, is
// read past that batch: the reader decodes with the partition's limits,
// the ones its append was checked against.
func TestReadTopicTakesBatchesUpToTheServersCap(t *testing.T) {
	n := &node{t: t, fsys: vfs.Default(), dir: t.TempDir(), configure: func(c *server.Config) { c.DecompressedBatchBytesMax = 80 << 20 }}
	n.start()
	t.Cleanup(n.stop)
	ctx := ctxT(t)
	if _, err := n.srv.Cluster().CreateTopic("big", 1, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	p, err := n.srv.Cluster().Partition("big", 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(batch.Build([]batch.Record{{Value: make([]byte, batch.DecompressedBytesMaxDefault+1<<20)}}, batch.Zstd))
	if err == nil {
		err = p.WaitAppended(ctx, res, true)
	}
	if err != nil {
		t.Fatalf("append a batch above the default cap: %v", err)
	}
	n.mustAppend(ctx, "big", "order-1", nil, ev("Placed", "{}"))
	resp, err := n.client.ReadTopic(ctx, connect.NewRequest(&eventstorev1.ReadTopicRequest{Topic: "big"}))
	if err != nil {
		t.Fatalf("read past the large batch: %v", err)
	}
	if len(resp.Msg.Events) != 1 || resp.Msg.Events[0].Type != "Placed" {
		t.Fatalf("read %d events (%v), want the one appended after the large batch", len(resp.Msg.Events), resp.Msg.Events)
	}
}
