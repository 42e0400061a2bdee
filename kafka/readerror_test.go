package kafka

import (
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestReadErrorFailsOnlyThatPartition: an I/O error reading one partition's
// log answers that partition's fetch with KAFKA_STORAGE_ERROR while the
// other partition in the same request is served, and the partition still
// accepts writes.
func TestReadErrorFailsOnlyThatPartition(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	ts := startServerFS(t, efs)
	if _, err := ts.cluster.CreateTopic("r", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	for i := int32(0); i < 2; i++ {
		p, _ := ts.cluster.Partition("r", i)
		res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("v")}}, batch.None))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitDurable(adminContext(t), res.LastOffset); err != nil {
			t.Fatal(err)
		}
	}
	remove := efs.Inject(vfs.Rule{Op: vfs.OpRead, PathContains: "r-0/", Err: syscall.EIO})
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.MaxBytes, req.SessionEpoch = 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "r"
	for i := int32(0); i < 2; i++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = i, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	rc := ts.dial(t)
	resp := rc.roundTrip(req).(*kmsg.FetchResponse)
	broken, healthy := resp.Topics[0].Partitions[0], resp.Topics[0].Partitions[1]
	if broken.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("partition with read errors: code %d, want KAFKA_STORAGE_ERROR", broken.ErrorCode)
	}
	if healthy.ErrorCode != 0 || len(healthy.RecordBatches) == 0 {
		t.Fatalf("healthy partition: code %d, %d bytes", healthy.ErrorCode, len(healthy.RecordBatches))
	}
	p0, _ := ts.cluster.Partition("r", 0)
	if _, err := p0.Append(batch.Build([]batch.Record{{Value: []byte("w")}}, batch.None)); err != nil {
		t.Fatalf("writes after a read error: %v", err)
	}
	remove()
	resp = rc.roundTrip(req).(*kmsg.FetchResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("after the disk recovered: code %d", code)
	}
}
