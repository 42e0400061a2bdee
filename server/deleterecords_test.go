package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// A DeleteRecords sent to a partition's leader just cut off from its
// followers cannot commit: the leader answers REQUEST_TIMED_OUT once the
// request's TimeoutMillis passed, as Kafka does, rather than holding the
// connection until it steps down (a CheckQuorum election timeout later,
// NOT_LEADER_OR_FOLLOWER). Healed, the deletion is retried and applied.
func TestDeleteRecordsAnswersWithinItsTimeout(t *testing.T) {
	tc := startClusterWith(t, &testCluster{t: t, proxied: true})
	const topic = "deletetimeout"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)
	index := partitionLedBy(ctx, t, tc, topic, isolated)
	client := newFailoverClient(t, tc, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceAcked(ctx, t, client, topic, failoverPartitions, "record", 20)
	p, err := tc.servers[isolated].Cluster().Partition(topic, index)
	if err != nil {
		t.Fatal(err)
	}
	to := p.HighWatermark() / 2

	deleteRecords := func(node int32, timeout time.Duration) (*kmsg.DeleteRecordsResponseTopicPartition, time.Duration) {
		t.Helper()
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.TimeoutMillis = int32(timeout.Milliseconds())
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = index, to
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		callCtx, cancel := context.WithTimeout(ctx, failoverStageWaitMax)
		defer cancel()
		start := time.Now()
		resp, err := req.RequestWith(callCtx, client.Broker(int(node)))
		if err != nil {
			t.Fatalf("DeleteRecords to node %d: %v", node, err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("DeleteRecords answered %+v", resp)
		}
		return &resp.Topics[0].Partitions[0], time.Since(start)
	}

	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
	got, took := deleteRecords(isolated, 100*time.Millisecond)
	if err := kerr.ErrorForCode(got.ErrorCode); err != kerr.RequestTimedOut {
		t.Fatalf("DeleteRecords on a cut-off leader answered %v after %v, want REQUEST_TIMED_OUT after its 100 ms timeout", err, took)
	}
	t.Logf("cut off: REQUEST_TIMED_OUT after %v", took.Round(time.Millisecond))
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})

	for deadline := time.Now().Add(failoverStageWaitMax); ; {
		lead := tc.leaderOf(topic, index)
		got, took = deleteRecords(lead, 5000*time.Millisecond)
		if got.ErrorCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DeleteRecords to leader %d after the heal: %v after %v", lead, kerr.ErrorForCode(got.ErrorCode), took)
		}
	}
	if got.LowWatermark != to {
		t.Fatalf("after the heal: low watermark %d, want %d", got.LowWatermark, to)
	}
	for id, s := range tc.servers {
		q, err := s.Cluster().Partition(topic, index)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("node %d to apply the deletion below %d", id, to), func() bool { return q.LogStartOffset() == to })
	}
}
