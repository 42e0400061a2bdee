package kafka

import (
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestProduceAnswersEachPartitionInItsOwnSlot proves that in an acks=all
// produce to several partitions, where some are refused before any write
// and some wait for their sync, each partition's outcome lands in its own
// response entry: the one whose sync fails reports it, the refused keep
// their errors, and the others keep their own base offsets.
func TestProduceAnswersEachPartitionInItsOwnSlot(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	ts := startServerFS(t, efs)
	for topic, partitions := range map[string]int32{"a": 3, "b": 2} {
		if _, err := ts.cluster.CreateTopic(topic, partitions, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	rc := ts.dial(t)
	// Distinct log ends, so each partition's base offset is its own.
	for _, before := range []struct {
		topic     string
		partition int32
		records   int
	}{{"a", 0, 1}, {"a", 2, 2}, {"b", 1, 3}} {
		for range before.records {
			resp := produce(t, rc, map[string][]partitionRecords{before.topic: {{before.partition, oneRecord("before")}}})
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatalf("produce to %s-%d: code %d", before.topic, before.partition, code)
			}
		}
	}
	efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: "/a-2/", Err: syscall.EIO})
	corrupt := oneRecord("x")
	corrupt[len(corrupt)-1] ^= 1

	resp := produce(t, rc, map[string][]partitionRecords{
		"a": {{0, oneRecord("waits")}, {1, corrupt}, {2, oneRecord("sync fails")}, {7, oneRecord("no such partition")}},
		"b": {{0, corrupt}, {1, oneRecord("waits")}},
	})
	type outcome struct {
		code int16
		base int64
	}
	want := map[string]map[int32]outcome{
		"a": {0: {0, 1}, 1: {kerr.CorruptMessage.Code, -1}, 2: {kerr.KafkaStorageError.Code, -1}, 7: {kerr.UnknownTopicOrPartition.Code, -1}},
		"b": {0: {kerr.CorruptMessage.Code, -1}, 1: {0, 3}},
	}
	answered := 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got := outcome{rp.ErrorCode, rp.BaseOffset}
			if got != want[rt.Topic][rp.Partition] {
				t.Errorf("%s-%d: code %d base %d, want code %d base %d", rt.Topic, rp.Partition,
					got.code, got.base, want[rt.Topic][rp.Partition].code, want[rt.Topic][rp.Partition].base)
			}
			answered++
		}
	}
	if answered != 6 {
		t.Fatalf("%d partitions answered, want 6", answered)
	}
}

type partitionRecords struct {
	partition int32
	records   []byte
}

// produce sends one acks=all Produce v9 with the given partitions, topics in
// name order and partitions in the order given, and returns its response.
func produce(t *testing.T, rc *rawConn, topics map[string][]partitionRecords) *kmsg.ProduceResponse {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = -1
	req.TimeoutMillis = 5000
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for _, pr := range topics[topic] {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = pr.partition, pr.records
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return rc.roundTrip(req).(*kmsg.ProduceResponse)
}

// TestProduceRetryOfACommittedBatchOnAReplicatedPartition: an idempotent
// producer that lost the answer to an acks=all produce sends the same
// batch again; on a replicated partition (a one-voter cluster) the retry
// is recognised from producer state and answered with the original's
// offset, not written twice and not refused. After a failover this is
// how a producer learns that its batch committed under the old leader.
func TestProduceRetryOfACommittedBatchOnAReplicatedPartition(t *testing.T) {
	ts := startServerWith(t, serverSetup{oneVoter: true})
	if _, err := ts.cluster.CreateTopicReplicated("r", 1, 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p, err := ts.cluster.Partition("r", 0)
	if err != nil || !p.Replicated() {
		t.Fatalf("partition r-0: replicated %t, err %v", err == nil && p.Replicated(), err)
	}
	rc := ts.dial(t)
	tmpl := batch.Header{PartitionLeaderEpoch: -1, ProducerID: 7, ProducerEpoch: 0, BaseSequence: 0}
	first, err := batch.Encode(tmpl, 0, []batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("once")}}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The partition's group elects its one voter just after the topic is created.
		resp := produce(t, rc, map[string][]partitionRecords{"r": {{0, slices.Clone(first)}}})
		rp := resp.Topics[0].Partitions[0]
		if rp.ErrorCode == 0 {
			if rp.BaseOffset != 0 {
				t.Fatalf("first produce at %d", rp.BaseOffset)
			}
			break
		}
		if rp.ErrorCode != kerr.NotLeaderForPartition.Code || time.Now().After(deadline) {
			t.Fatalf("first produce: code %d", rp.ErrorCode)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the election: no event a client sees
	}
	for retry := range 2 {
		rp := produce(t, rc, map[string][]partitionRecords{"r": {{0, slices.Clone(first)}}}).Topics[0].Partitions[0]
		if rp.ErrorCode != 0 || rp.BaseOffset != 0 {
			t.Fatalf("retry %d: code %d base %d, want the original's offset 0", retry, rp.ErrorCode, rp.BaseOffset)
		}
	}
	if end := p.HighWatermark(); end != 1 {
		t.Fatalf("high watermark %d after one batch and its retries", end)
	}
}
