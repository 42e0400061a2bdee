package kafka

import (
	"bytes"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// sentfile reads the bytes counted as sent with sendfile.
func sentfile(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := sentfileBytes.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestFetchSendsRecordsFromFiles: on the operating system's filesystem
// and a plain TCP connection, fetched records go out with sendfile, and
// every version's response (int32 and varint length prefixes, several
// partitions, reads spanning segments, a partition left empty) holds
// exactly the bytes a read of the partition gives.
func TestFetchSendsRecordsFromFiles(t *testing.T) {
	ts := startServerWith(t, serverSetup{fs: vfs.Default(), dir: t.TempDir()})
	const topic = "zc"
	if _, err := ts.cluster.CreateTopic(topic, 3, map[string]string{"segment.bytes": "4096"}, false); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		for index := range int32(2) { // partition 2 stays empty
			p, err := ts.cluster.Partition(topic, index)
			if err != nil {
				t.Fatal(err)
			}
			value := bytes.Repeat([]byte{byte(i)}, 300+int(index)*50)
			res, err := p.Append(batch.Build([]batch.Record{{Value: value}, {Value: value}}, batch.None))
			if err != nil {
				t.Fatal(err)
			}
			// Fetches see records at the high watermark: wait for it, as
			// an acks=all produce would, so each read below is whole.
			if err := p.WaitAppended(adminContext(t), res, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	rc := ts.dial(t)
	before := sentfile(t)
	for _, v := range []int16{4, 7, 11, 12} {
		for _, offset := range []int64{0, 17, 79} {
			req := kmsg.NewPtrFetchRequest()
			req.SetVersion(v)
			req.MaxBytes, req.SessionEpoch, req.ReplicaID = 1<<20, -1, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			for index := range int32(3) {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = index, offset, 10000, -1
				if index == 2 {
					rp.FetchOffset = 0
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			resp := rc.roundTrip(req).(*kmsg.FetchResponse)
			for _, sp := range resp.Topics[0].Partitions {
				p, _ := ts.cluster.Partition(topic, sp.Partition)
				want, err := p.Read(min(offset, p.HighWatermark()), 10000)
				if sp.Partition == 2 {
					want.Records, err = nil, nil
				}
				if err != nil {
					t.Fatal(err)
				}
				if sp.ErrorCode != 0 || !bytes.Equal(sp.RecordBatches, want.Records) {
					t.Fatalf("v%d offset %d partition %d: error %d, %d bytes, want %d", v, offset, sp.Partition,
						sp.ErrorCode, len(sp.RecordBatches), len(want.Records))
				}
			}
		}
	}
	if sentfile(t) == before {
		t.Fatal("no record bytes went out with sendfile")
	}

	// franz-go reads every record through sessions and sendfile.
	consumer := ts.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(5000))
	next := map[int32]int64{}
	for got := 0; got < 160; {
		fs := consumer.PollFetches(adminContext(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			i := int(next[r.Partition] / 2)
			if r.Offset != next[r.Partition] || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte(i)}, 300+int(r.Partition)*50)) {
				t.Fatalf("partition %d offset %d (expected %d): %s", r.Partition, r.Offset, next[r.Partition], fmt.Sprintf("%.20q", r.Value))
			}
			next[r.Partition]++
			got++
		})
	}
}
