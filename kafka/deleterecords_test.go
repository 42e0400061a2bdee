package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func deleteRecordsRequest(version int16, topic string, offsets map[int32]int64) *kmsg.DeleteRecordsRequest {
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Version, req.TimeoutMillis = version, 5000
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestDeleteRecordsVersions proves each served version (lowest, both sides of
// the flexible switch at v2) advances the log start offset and reports it as
// the low watermark.
func TestDeleteRecordsVersions(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{0, 1, 2} {
		name := fmt.Sprintf("trimmed-v%d", version)
		adminCreate(t, ts, name, 1, nil)
		adminProduce(t, ts, name, 0, 5)
		resp := ts.dial(t).roundTrip(deleteRecordsRequest(version, name, map[int32]int64{0: 3})).(*kmsg.DeleteRecordsResponse)
		got := resp.Topics[0].Partitions[0]
		if resp.Topics[0].Topic != name || got.ErrorCode != 0 || got.LowWatermark != 3 {
			t.Fatalf("v%d: %s, low watermark %d; want 3", version, codeOf(got.ErrorCode), got.LowWatermark)
		}
		p, err := ts.cluster.Partition(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if p.LogStartOffset() != 3 {
			t.Errorf("v%d: log start offset %d, want 3", version, p.LogStartOffset())
		}
	}
}

// TestDeleteRecordsCases proves -1 deletes up to the high watermark, an
// offset beyond it or an unknown partition is refused per partition, and a
// compacted topic is refused with POLICY_VIOLATION.
func TestDeleteRecordsCases(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "bounded", 2, nil)
	adminProduce(t, ts, "bounded", 0, 4)
	adminProduce(t, ts, "bounded", 1, 2)
	adminCreate(t, ts, "compacted", 1, map[string]string{"cleanup.policy": "compact"})
	adminProduce(t, ts, "compacted", 0, 2)
	cases := []struct {
		name      string
		topic     string
		partition int32
		offset    int64
		code      *kerr.Error // nil: accepted
		low       int64
	}{
		{"to the high watermark", "bounded", 0, -1, nil, 4},
		{"backwards is a no-op", "bounded", 0, 1, nil, 4},
		{"beyond the high watermark", "bounded", 1, 3, kerr.OffsetOutOfRange, -1},
		{"below -1", "bounded", 1, -2, kerr.OffsetOutOfRange, -1},
		{"unknown partition", "bounded", 9, 0, kerr.UnknownTopicOrPartition, -1},
		{"unknown topic", "missing", 0, 0, kerr.UnknownTopicOrPartition, -1},
		{"compacted topic", "compacted", 0, 1, kerr.PolicyViolation, -1},
	}
	rc := ts.dial(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rc.roundTrip(deleteRecordsRequest(2, tc.topic, map[int32]int64{tc.partition: tc.offset})).(*kmsg.DeleteRecordsResponse)
			got := resp.Topics[0].Partitions[0]
			want := int16(0)
			if tc.code != nil {
				want = tc.code.Code
			}
			if got.ErrorCode != want || got.LowWatermark != tc.low || got.Partition != tc.partition {
				t.Errorf("partition %d: %s, low watermark %d; want %s, %d", got.Partition, codeOf(got.ErrorCode), got.LowWatermark, codeOf(want), tc.low)
			}
		})
	}
	for _, refused := range []struct {
		topic     string
		partition int32
	}{{"bounded", 1}, {"compacted", 0}} {
		p, err := ts.cluster.Partition(refused.topic, refused.partition)
		if err != nil {
			t.Fatal(err)
		}
		if p.LogStartOffset() != 0 {
			t.Errorf("a refused deletion moved %s-%d's start to %d", refused.topic, refused.partition, p.LogStartOffset())
		}
	}
}

// TestDeleteRecordsWithKadm proves franz-go's admin client deletes records
// and then lists the new start offset.
func TestDeleteRecordsWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	adminCreate(t, ts, "pruned", 1, nil)
	adminProduce(t, ts, "pruned", 0, 6)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "pruned", Partition: 0, At: 4})
	resps, err := adm.DeleteRecords(ctx, offsets)
	if err != nil || resps.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resps.Error())
	}
	if r, ok := resps.Lookup("pruned", 0); !ok || r.LowWatermark != 4 {
		t.Errorf("response %+v", r)
	}
	starts, err := adm.ListStartOffsets(ctx, "pruned")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := starts.Lookup("pruned", 0); !ok || o.Err != nil || o.Offset != 4 {
		t.Errorf("start offset %+v, want 4", o)
	}
}
