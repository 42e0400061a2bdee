package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/batch"
)

func kafkaClient(t *testing.T, n *node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.srv.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeAll reads every record of a topic up to its end.
func consumeAll(t *testing.T, n *node, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kafkaClient(t, n)
	ends, err := listEnds(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, e := range ends {
		total += e
	}
	cl := kafkaClient(t, n, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) > 0 && out[len(out)-1].Offset+1 >= total {
			break
		}
	}
	return out
}

func listEnds(ctx context.Context, cl *kgo.Client, topic string) ([]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Timestamp = -1
	rt.Partitions = append(rt.Partitions, p)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, err
			}
			out = append(out, p.Offset)
		}
	}
	return out, nil
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// TestStreamCleanupPolicy: the stream cleaner removes exactly the events of
// truncated, capped, soft- and hard-deleted streams from sealed segments,
// keeps every other record, and leaves markers so that an index rebuilt from
// the cleaned log numbers the surviving events as before.
func TestStreamCleanupPolicy(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.srv.Cluster().CreateTopic("ev", 1, map[string]string{"cleanup.policy": "stream", "segment.bytes": "2048"}, false); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{"A": 10, "B": 10, "C": 5, "D": 4, "E": 6}
	kc := kafkaClient(t, n, kgo.DefaultProduceTopic("ev"))
	for i := range 10 {
		for _, s := range []string{"A", "B", "C", "D", "E"} {
			if i < counts[s] {
				n.mustAppend(ctx, "ev", s, nil, ev("E", fmt.Sprintf("%s-%d", s, i)))
			}
		}
		if i%3 == 0 {
			if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("keyless-%d", i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	u := func(v uint64) *uint64 { return &v }
	for stream, md := range map[string]*eventstorev1.StreamMetadata{"A": {TruncateBefore: u(3)}, "B": {MaxCount: u(2)}} {
		if _, err := n.client.SetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.SetStreamMetadataRequest{Topic: "ev", Stream: stream, Metadata: md})); err != nil {
			t.Fatal(err)
		}
	}
	for stream, hard := range map[string]bool{"C": true, "D": false} {
		if _, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "ev", Stream: stream, Hard: hard})); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 { // pushes everything above into sealed segments
		n.mustAppend(ctx, "ev", "filler", nil, ev("F", fmt.Sprintf("filler-%d", i)))
	}
	before := consumeAll(t, n, "ev")
	n.srv.Cluster().CleanOnce(time.Now().UnixMilli())
	after := consumeAll(t, n, "ev")

	events := map[string][]string{}
	markers := map[string]int{}
	ops := map[string][]string{}
	keyless := 0
	for _, r := range after {
		if r.Key == nil {
			keyless++
			continue
		}
		if op, ok := header(r, "cairn-stream-op"); ok {
			if op == "cleaned" {
				rev, _ := header(r, "cairn-revision")
				v, _ := strconv.Atoi(rev)
				markers[string(r.Key)] = max(markers[string(r.Key)], v)
			} else {
				ops[string(r.Key)] = append(ops[string(r.Key)], op)
			}
			continue
		}
		events[string(r.Key)] = append(events[string(r.Key)], string(r.Value))
	}
	want := map[string][]string{}
	for s, c := range map[string][2]int{"A": {3, 10}, "B": {8, 10}, "E": {0, 6}, "filler": {0, 20}} {
		for i := c[0]; i < c[1]; i++ {
			want[s] = append(want[s], fmt.Sprintf("%s-%d", s, i))
		}
	}
	want["filler"] = nil
	for i := range 20 {
		want["filler"] = append(want["filler"], fmt.Sprintf("filler-%d", i))
	}
	for s := range want {
		if !slices.Equal(events[s], want[s]) {
			t.Errorf("stream %s after cleaning: %v, want %v", s, events[s], want[s])
		}
	}
	for _, s := range []string{"C", "D"} {
		if len(events[s]) != 0 {
			t.Errorf("deleted stream %s kept %v", s, events[s])
		}
	}
	if keyless != 4 {
		t.Errorf("%d keyless records kept, want 4", keyless)
	}
	if fmt.Sprint(markers) != "map[A:2 B:7 D:3]" {
		t.Errorf("markers (highest revision per stream) %v", markers)
	}
	if fmt.Sprint(ops["C"]) != "[hard-delete]" || fmt.Sprint(ops["D"]) != "[delete]" || len(ops["A"]) != 1 {
		t.Errorf("operation records %v", ops)
	}
	if len(after) >= len(before) {
		t.Fatalf("cleaning kept %d of %d records", len(after), len(before))
	}
	// Offsets never move.
	byOffset := map[int64]*kgo.Record{}
	for _, r := range before {
		byOffset[r.Offset] = r
	}
	for _, r := range after {
		if b := byOffset[r.Offset]; b == nil || !slices.Equal(b.Key, r.Key) {
			t.Fatalf("record at offset %d changed key", r.Offset)
		}
	}
	// A second pass changes nothing.
	n.srv.Cluster().CleanOnce(time.Now().UnixMilli())
	if again := consumeAll(t, n, "ev"); len(again) != len(after) {
		t.Fatalf("second pass: %d records, first left %d", len(again), len(after))
	}

	// Rebuilt from the cleaned log, the index numbers streams as before.
	n.stop()
	n.removeIndexes()
	n.start()
	for s, first := range map[string]uint64{"A": 3, "B": 8, "E": 0} {
		got := n.readAll(ctx, "ev", s)
		if len(got) != len(want[s]) || !contiguous(revisions(got), first) {
			t.Errorf("%s after rebuild: %v", s, revisions(got))
		}
		for i, e := range got {
			if string(e.Data) != want[s][i] {
				t.Errorf("%s revision %d holds %s", s, e.Revision, e.Data)
			}
		}
	}
	if resp := n.mustAppend(ctx, "ev", "D", noStream(), ev("E", "D-again")); resp.FirstRevision != 4 {
		t.Errorf("soft-deleted D continues at %d, want 4", resp.FirstRevision)
	}
	if resp := n.mustAppend(ctx, "ev", "A", exact(9), ev("E", "A-10")); resp.FirstRevision != 10 {
		t.Errorf("A continues at %d", resp.FirstRevision)
	}
	if _, err := n.append(ctx, "ev", "C", nil, ev("E", "C-again")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("hard-deleted C after rebuild: %v", err)
	}
}

// TestKafkaExpectedRevisionHeader: Kafka producers get the same check by
// putting cairn-expected-revision on a record; their plain records are
// indexed as events; other topics refuse the header.
func TestKafkaExpectedRevisionHeader(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	n.mustAppend(ctx, "orders", "order-7", noStream(), ev("Placed", "{}"), ev("Paid", "{}"))
	kc := kafkaClient(t, n, kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	withExpected := func(v, expected string) *kgo.Record {
		return &kgo.Record{Key: []byte("order-7"), Value: []byte(v), Headers: []kgo.RecordHeader{{Key: "cairn-expected-revision", Value: []byte(expected)}}}
	}
	if err := kc.ProduceSync(ctx, withExpected("ok", "1")).FirstErr(); err != nil {
		t.Fatalf("matching expected revision: %v", err)
	}
	if err := kc.ProduceSync(ctx, &kgo.Record{Key: []byte("order-7"), Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The raw response carries the message naming the stream and its revision.
	msg := produceRaw(t, n, "orders", withExpected("stale", "1"))
	if msg.code != kerr.InvalidRecord.Code || !strings.Contains(msg.text, `"order-7"`) || !strings.Contains(msg.text, "revision is 3") {
		t.Fatalf("stale expected revision: code %d message %q", msg.code, msg.text)
	}
	got := n.readAll(ctx, "orders", "order-7")
	if len(got) != 4 || string(got[2].Data) != "ok" || string(got[3].Data) != "plain" || got[3].Type != "" {
		t.Fatalf("stream after Kafka produces: %v", revisions(got))
	}
	if _, err := n.srv.Cluster().CreateTopic("plain", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if msg := produceRaw(t, n, "plain", withExpected("x", "any")); msg.code != kerr.InvalidRecord.Code || !strings.Contains(msg.text, "cleanup.policy=stream") {
		t.Fatalf("header on a delete-policy topic: %d %q", msg.code, msg.text)
	}
}

type produceReply struct {
	code int16
	text string
}

// produceRaw sends one record in its own produce request and returns the
// partition's error code and message.
func produceRaw(t *testing.T, n *node, topic string, r *kgo.Record) produceReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := kafkaClient(t, n)
	rec := batch.Record{Key: r.Key, Value: r.Value, TimestampMs: time.Now().UnixMilli()}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, batch.RecordHeader{Key: h.Key, Value: h.Value})
	}
	raw := batch.Build([]batch.Record{rec}, batch.None)
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = raw
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	text := ""
	if p.ErrorMessage != nil {
		text = *p.ErrorMessage
	}
	return produceReply{p.ErrorCode, text}
}

// TestStreamTopicRefusals: operations that would renumber or move streams
// are refused on stream topics with Kafka's error codes.
func TestStreamTopicRefusals(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	n.mustAppend(ctx, "ev", "s", nil, ev("E", "{}"))
	adm := kadm.NewClient(kafkaClient(t, n))
	created, err := adm.CreatePartitions(ctx, 2, "ev")
	if err != nil {
		t.Fatal(err)
	}
	if r := created["ev"]; !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Errorf("CreatePartitions on a stream topic: %v", r.Err)
	}
	deleted, err := adm.DeleteRecords(ctx, kadm.Offsets{"ev": {0: {Topic: "ev", Partition: 0, At: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := deleted.Lookup("ev", 0); !errors.Is(r.Err, kerr.PolicyViolation) {
		t.Errorf("DeleteRecords on a stream topic: %v", r.Err)
	}
	if got := n.readAll(ctx, "ev", "s"); len(got) != 1 {
		t.Fatalf("stream after refused operations: %v", revisions(got))
	}
}
