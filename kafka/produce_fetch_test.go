package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
)

// TestFranzRoundTripEveryCodec: franz-go produces keyed records with headers
// under each codec (idempotent, acks=all) and reads them back unchanged, at
// the offsets the produce acknowledged.
func TestFranzRoundTripEveryCodec(t *testing.T) {
	ts := startServer(t)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			cl := ts.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec), kgo.AllowAutoTopicCreation())
			const n = 200
			acked := map[int64]string{}
			for i := 0; i < n; i++ {
				r := &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: []byte(fmt.Sprintf("value-%d", i)),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(name)}}}
				res := cl.ProduceSync(adminContext(t), r)
				if err := res.FirstErr(); err != nil {
					t.Fatal(err)
				}
				acked[res[0].Record.Offset] = string(r.Value)
			}
			consumer := ts.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := 0
			for got < n {
				fs := consumer.PollFetches(adminContext(t))
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					got++
					if acked[r.Offset] != string(r.Value) {
						t.Fatalf("offset %d holds %q, acknowledged %q", r.Offset, r.Value, acked[r.Offset])
					}
					if len(r.Headers) != 1 || string(r.Headers[0].Value) != name {
						t.Fatalf("headers %v", r.Headers)
					}
				})
			}
		})
	}
}

// TestMetadataAutoCreate: auto-creation follows the server config and the
// request flag; invalid names get INVALID_TOPIC_EXCEPTION.
func TestMetadataAutoCreate(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.DefaultPartitions = 3 })
	rc := ts.dial(t)
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	req.AllowAutoTopicCreation = true
	for _, name := range []string{"auto", "bad/name"} {
		rt := kmsg.NewMetadataRequestTopic()
		n := name
		rt.Topic = &n
		req.Topics = append(req.Topics, rt)
	}
	resp := rc.roundTrip(req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 2 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != 3 {
		t.Fatalf("auto topic: %+v", resp.Topics[0])
	}
	if resp.Topics[0].Partitions[0].Leader != 0 || resp.Topics[0].TopicID == [16]byte{} {
		t.Fatalf("leader/topic id: %+v", resp.Topics[0])
	}
	if resp.Topics[1].ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("bad name: code %d", resp.Topics[1].ErrorCode)
	}
	internal := "__internal"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &internal}}
	if code := rc.roundTrip(req).(*kmsg.MetadataResponse).Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("internal name auto-created: code %d", code)
	}
	req.AllowAutoTopicCreation = false
	n := "not-created"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &n}}
	resp = rc.roundTrip(req).(*kmsg.MetadataResponse)
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("no auto-create: code %d", resp.Topics[0].ErrorCode)
	}
	for _, v := range []int16{0, 1, 4, 9} {
		old := kmsg.NewPtrMetadataRequest()
		old.SetVersion(v)
		if v == 0 {
			old.Topics = []kmsg.MetadataRequestTopic{}
		}
		all := rc.roundTrip(old).(*kmsg.MetadataResponse)
		if len(all.Topics) != 1 || len(all.Brokers) != 1 || all.Brokers[0].Port != ts.first.port {
			t.Fatalf("v%d all topics: %+v", v, all)
		}
	}
}

func produceRaw(t *testing.T, rc *rawConn, version int16, acks int16, topic string, records []byte) *kmsg.ProduceResponse {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if acks == 0 {
		rc.send(req)
		return nil
	}
	return rc.roundTrip(req).(*kmsg.ProduceResponse)
}

func oneRecord(value string) []byte {
	return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte(value)}}, batch.None)
}

// TestProduceVersionsAndErrors: every served Produce version appends; bad
// batches, unknown topics and invalid acks get their Kafka error codes.
func TestProduceVersionsAndErrors(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("p", 1, map[string]string{"max.message.bytes": "500"}, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	next := int64(0)
	for v := int16(3); v <= 9; v++ {
		resp := produceRaw(t, rc, v, -1, "p", oneRecord(fmt.Sprintf("v%d", v)))
		sp := resp.Topics[0].Partitions[0]
		if sp.ErrorCode != 0 || sp.BaseOffset != next {
			t.Fatalf("v%d: %+v", v, sp)
		}
		next++
	}
	for v := int16(0); v < 3; v++ {
		sp := produceRaw(t, rc, v, -1, "p", oneRecord("old")).Topics[0].Partitions[0]
		if sp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Fatalf("Produce v%d: code %d, want UNSUPPORTED_VERSION", v, sp.ErrorCode)
		}
	}
	corrupt := oneRecord("x")
	corrupt[len(corrupt)-1] ^= 1
	big := batch.Build([]batch.Record{{Value: make([]byte, 600)}}, batch.None)
	cases := []struct {
		name  string
		acks  int16
		topic string
		data  []byte
		code  int16
	}{
		{"corrupt", -1, "p", corrupt, kerr.CorruptMessage.Code},
		{"too large", 1, "p", big, kerr.MessageTooLarge.Code},
		{"unknown topic", -1, "nope", oneRecord("x"), kerr.UnknownTopicOrPartition.Code},
		{"bad acks", 2, "p", oneRecord("x"), kerr.InvalidRequiredAcks.Code},
	}
	for _, c := range cases {
		resp := produceRaw(t, rc, 9, c.acks, c.topic, c.data)
		sp := resp.Topics[0].Partitions[0]
		if sp.ErrorCode != c.code || sp.ErrorMessage == nil {
			t.Errorf("%s: code %d (%v), want %d", c.name, sp.ErrorCode, sp.ErrorMessage, c.code)
		}
	}
	p, _ := ts.cluster.Partition("p", 0)
	if p.LogEndOffset() != next {
		t.Fatalf("refused produces wrote data: log end %d", p.LogEndOffset())
	}
	// acks=0: no response; the next request's response comes back in order.
	produceRaw(t, rc, 9, 0, "p", oneRecord("fire-and-forget"))
	resp := produceRaw(t, rc, 9, 1, "p", oneRecord("after"))
	if sp := resp.Topics[0].Partitions[0]; sp.ErrorCode != 0 || sp.BaseOffset != next+1 {
		t.Fatalf("after acks=0: %+v", sp)
	}
	// A failed acks=0 produce closes the connection, the only way its client learns.
	produceRaw(t, rc, 9, 0, "p", corrupt)
	if !rc.closed() {
		t.Fatal("connection open after a failed acks=0 produce")
	}
}

// TestPipelinedOrder: many requests written before any response is read are
// answered in order, and pipelined produces land in the order sent.
func TestPipelinedOrder(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("pipe", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	var reqs []kmsg.Request
	var corrs []int32
	for i := 0; i < 20; i++ {
		var req kmsg.Request
		if i%3 == 0 {
			req = kmsg.NewPtrApiVersionsRequest()
		} else {
			pr := kmsg.NewPtrProduceRequest()
			pr.SetVersion(7)
			pr.Acks = -1
			pr.TimeoutMillis = 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "pipe"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = oneRecord(fmt.Sprint(i))
			rt.Partitions = append(rt.Partitions, rp)
			pr.Topics = append(pr.Topics, rt)
			req = pr
		}
		reqs = append(reqs, req)
		corrs = append(corrs, rc.send(req))
	}
	last := int64(-1)
	for i, req := range reqs {
		resp := rc.receive(req, corrs[i])
		if pr, ok := resp.(*kmsg.ProduceResponse); ok {
			off := pr.Topics[0].Partitions[0].BaseOffset
			if off != last+1 {
				t.Fatalf("produce %d landed at %d after %d", i, off, last)
			}
			last = off
		}
	}
}

// TestFetchLongPollAndLimits: an empty fetch waits for MinBytes until data
// arrives; out-of-range offsets answer OFFSET_OUT_OF_RANGE with the bounds;
// a batch larger than the byte limits is still returned whole.
func TestFetchLongPollAndLimits(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("f", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.cluster.Partition("f", 0)
	fetch := func(v int16, offset int64, wait int32, maxBytes int32) *kmsg.FetchRequest {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = wait, 1, maxBytes
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "f"
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, maxBytes, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}
	rc := ts.dial(t)
	start := time.Now()
	corr := rc.send(fetch(12, 0, 5000, 1<<20))
	time.Sleep(100 * time.Millisecond)
	if _, err := p.Append(batch.Build([]batch.Record{{Value: make([]byte, 3000)}}, batch.None)); err != nil {
		t.Fatal(err)
	}
	resp := rc.receive(fetch(12, 0, 5000, 1<<20), corr).(*kmsg.FetchResponse)
	sp := resp.Topics[0].Partitions[0]
	if len(sp.RecordBatches) == 0 || sp.HighWatermark != 1 || time.Since(start) > 4*time.Second {
		t.Fatalf("long poll: %d bytes, hwm %d, after %v", len(sp.RecordBatches), sp.HighWatermark, time.Since(start))
	}
	for _, v := range []int16{4, 7, 11, 12} {
		small := rc.roundTrip(fetch(v, 0, 0, 100)).(*kmsg.FetchResponse)
		if got := len(small.Topics[0].Partitions[0].RecordBatches); got < 3000 {
			t.Fatalf("v%d: first batch not returned whole under a 100-byte limit: %d bytes", v, got)
		}
		oor := rc.roundTrip(fetch(v, 5, 0, 100)).(*kmsg.FetchResponse)
		op := oor.Topics[0].Partitions[0]
		if op.ErrorCode != kerr.OffsetOutOfRange.Code || op.HighWatermark != 1 || (v >= 5 && op.LogStartOffset != 0) {
			t.Fatalf("v%d out of range: %+v", v, op)
		}
	}
	// The empty wait ends at MaxWaitMillis with an empty, non-null record set.
	empty := rc.roundTrip(fetch(11, 1, 50, 100)).(*kmsg.FetchResponse)
	if ep := empty.Topics[0].Partitions[0]; ep.ErrorCode != 0 || ep.RecordBatches == nil || len(ep.RecordBatches) != 0 {
		t.Fatalf("empty fetch: %+v", ep)
	}
	// A stale leader epoch is fenced, as Kafka does after a leader change.
	stale := fetch(12, 0, 0, 100)
	stale.Topics[0].Partitions[0].CurrentLeaderEpoch = p.LeaderEpoch() + 1
	if code := rc.roundTrip(stale).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("future epoch: code %d", code)
	}
}

// TestListOffsetsAndEpochs covers earliest, latest, by time, max timestamp,
// and OffsetForLeaderEpoch.
func TestListOffsetsAndEpochs(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("l", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p, _ := ts.cluster.Partition("l", 0)
	now := time.Now().UnixMilli()
	for i := int64(0); i < 3; i++ {
		res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: now + i*1000, Value: []byte("v")}}, batch.None))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitDurable(adminContext(t), res.LastOffset); err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.dial(t)
	for _, v := range []int16{1, 4, 7} {
		for _, c := range []struct{ ts, want int64 }{{-2, 0}, {-1, 3}, {now + 1500, 2}, {now + 9000, -1}, {-3, 2}} {
			if v < 7 && c.ts == -3 {
				continue
			}
			req := kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(v)
			req.ReplicaID = -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "l"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp, rp.CurrentLeaderEpoch = c.ts, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			sp := rc.roundTrip(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
			if sp.ErrorCode != 0 || sp.Offset != c.want {
				t.Errorf("v%d ts %d: offset %d code %d, want %d", v, c.ts, sp.Offset, sp.ErrorCode, c.want)
			}
		}
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "l"
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	// The records were written in the partition's current epoch (0 for a
	// single writer's first open, the group's term for a replica).
	epoch := p.LeaderEpoch()
	rp.CurrentLeaderEpoch, rp.LeaderEpoch = -1, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	sp := rc.roundTrip(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || sp.LeaderEpoch != epoch || sp.EndOffset != 3 {
		t.Fatalf("offset for epoch %d: %+v", epoch, sp)
	}
}

// TestBadFramesCloseOnlyTheirConnection: garbage, an unknown API key, an
// unsupported version and an oversized frame each close their connection;
// another client keeps being served.
func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestBytesMax = 64 << 10 })
	good := ts.client(t, kgo.DefaultProduceTopic("ok"), kgo.AllowAutoTopicCreation())
	frame := func(key, version int16) []byte {
		b := []byte{0, 0, 0, 14}
		b = append(b, byte(key>>8), byte(key), byte(version>>8), byte(version), 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0)
		return b
	}
	cases := map[string][]byte{
		"garbage":          []byte{0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		"unknown key":      frame(999, 0),
		"produce v0":       frame(0, 0),
		"2 GiB prefix":     []byte{0x7f, 0xff, 0xff, 0xff, 0, 0},
		"negative length":  []byte{0xff, 0xff, 0xff, 0xff},
		"frame over limit": {0, 2, 0, 0},
		"truncated fetch":  append([]byte{0, 0, 0, 20}, frame(1, 12)[4:]...),
	}
	for name, data := range cases {
		rc := ts.dial(t)
		rc.write(data)
		if name == "truncated fetch" {
			_ = rc.nc.(interface{ CloseWrite() error }).CloseWrite()
		}
		if !rc.closed() {
			t.Errorf("%s: connection still open", name)
		}
		if err := good.ProduceSync(adminContext(t), &kgo.Record{Value: []byte(name)}).FirstErr(); err != nil {
			t.Fatalf("after %s: good client failed: %v", name, err)
		}
	}
	// An unsupported ApiVersions version is answered, so clients can negotiate.
	rc := ts.dial(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(4)
	corr := rc.send(req)
	_ = corr
	unsupported := kmsg.NewPtrApiVersionsRequest()
	unsupported.SetVersion(0)
	b := []byte{0, 0, 0, 0, 0, 18, 0, 99, 0, 0, 0, 9, 0xff, 0xff}
	b[3] = byte(len(b) - 4)
	rc.write(b)
	rc.receive(req, corr)
	resp := rc.receive(unsupported, 9).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("unsupported ApiVersions: %+v", resp)
	}
}

// TestInitProducerID: ids are unique and epochs bump on request (KIP-360);
// a transactional id gets its producer id from its coordinator, the next
// epoch at each init.
func TestInitProducerID(t *testing.T) {
	ts := startServer(t)
	rc := ts.dial(t)
	seen := map[int64]bool{}
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp := rc.roundTrip(req).(*kmsg.InitProducerIDResponse)
		if resp.ErrorCode != 0 || seen[resp.ProducerID] || resp.ProducerEpoch != 0 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		seen[resp.ProducerID] = true
		if v >= 3 {
			req.ProducerID, req.ProducerEpoch = resp.ProducerID, 0
			bumped := rc.roundTrip(req).(*kmsg.InitProducerIDResponse)
			if bumped.ProducerID != resp.ProducerID || bumped.ProducerEpoch != 1 {
				t.Fatalf("v%d bump: %+v", v, bumped)
			}
		}
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	txn := "tx"
	req.TransactionalID, req.TransactionTimeoutMillis = &txn, 60_000
	if resp := rc.roundTrip(req).(*kmsg.InitProducerIDResponse); resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("transactional before FindCoordinator created %s: %+v", "__transaction_state", resp)
	}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.SetVersion(3) // key types came with v1
	find.CoordinatorKey, find.CoordinatorType = txn, 1
	if resp := rc.roundTrip(find).(*kmsg.FindCoordinatorResponse); resp.ErrorCode != 0 {
		t.Fatalf("find the transaction coordinator: %+v", resp)
	}
	first := rc.roundTrip(req).(*kmsg.InitProducerIDResponse)
	if first.ErrorCode != 0 || seen[first.ProducerID] || first.ProducerEpoch != 0 {
		t.Fatalf("transactional: %+v", first)
	}
	if again := rc.roundTrip(req).(*kmsg.InitProducerIDResponse); again.ErrorCode != 0 || again.ProducerID != first.ProducerID || again.ProducerEpoch != 1 {
		t.Fatalf("transactional re-init: %+v, want producer %d epoch 1", again, first.ProducerID)
	}
}

// TestRequestSecondsCountsAnsweredRequests: every answered request is
// timed once, under its API's name.
func TestRequestSecondsCountsAnsweredRequests(t *testing.T) {
	ts := startServer(t)
	observed := func(api string) (count uint64, sum float64) {
		var m dto.Metric
		if err := requestSeconds.WithLabelValues(api).(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	}
	producesBefore, _ := observed("Produce")
	cl := ts.client(t, kgo.DefaultProduceTopic("timed"), kgo.AllowAutoTopicCreation())
	const n = 5
	for i := range n {
		if err := cl.ProduceSync(adminContext(t), &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A request is timed once its response is written, which the client
	// may see first: wait (boundedly) for the last observation.
	producesAfter, sum := observed("Produce")
	for deadline := time.Now().Add(5 * time.Second); producesAfter-producesBefore < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		producesAfter, sum = observed("Produce")
	}
	if got := producesAfter - producesBefore; got != n {
		t.Errorf("%d produce requests timed, want %d", got, n)
	}
	if sum <= 0 {
		t.Errorf("produce requests took %g s in all", sum)
	}
	if count, _ := observed("Metadata"); count == 0 {
		t.Error("no Metadata request timed")
	}
}
