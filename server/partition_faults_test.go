package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// isolated is the node the black-hole test cuts off. Each pair of nodes
// keeps one connection, dialled by the lower id to the higher one's
// address in peers: every connection of node 3 goes through the proxy
// at its address, and no other pair's does.
const isolated = int32(3)

// TestClusterLeaderBlackholed: three servers in one process, each node's
// Raft listener behind a faultproxy at its address in peers. The node
// leading a partition is black-holed from the other two (its proxy holds
// every byte both ways) for longer than the election timeout while an
// idempotent acks=all franz-go producer writes: the other two elect a
// leader and the producer goes on through them. Healed, the old leader
// rejoins and catches up: every acknowledged record is on every replica
// once at its acknowledged offset, the replicas agree offset by offset,
// and no record the old leader appended alone (never acknowledged) is
// left.
func TestClusterLeaderBlackholed(t *testing.T) {
	tc := startClusterWith(t, &testCluster{t: t, proxied: true})
	const topic = "blackholed"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)
	index := partitionLedBy(ctx, t, tc, topic, isolated)

	producer := newFailoverClient(t, tc, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(failoverStageWaitMax), kgo.MetadataMinAge(250*time.Millisecond))
	acks := &ackLog{acks: map[string]ack{}, pace: groupFailoverPace}
	produceCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); acks.produceUntil(produceCtx, producer, topic) }()
	defer func() { stopProducing(); <-produced }()

	acks.waitAcked(t, failoverStageRecords)
	cut := time.Now()
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
	newLead := tc.majorityLeader(topic, index)
	// The records of the cut-off partition go on through the new leader
	// while the old one is still cut off.
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	for deadline := time.Now().Add(failoverStageWaitMax); acks.firstAckAfter(index, cut).IsZero(); {
		if time.Now().After(deadline) {
			t.Fatalf("nothing acknowledged on %s-%d after the cut", topic, index)
		}
		acks.waitAcked(t, acks.count()+failoverStageRecords/10)
	}
	t.Logf("node %d black-holed; node %d leads %s-%d %s after the cut", isolated, newLead, topic, index, time.Since(cut).Round(time.Millisecond))
	if p, err := tc.servers[isolated].Cluster().Partition(topic, index); err == nil {
		t.Logf("node %d, cut off: %s-%d high watermark %d, log end %d", isolated, topic, index, p.HighWatermark(), p.LogEndOffset())
	}
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
	acks.waitAcked(t, acks.count()+failoverStageRecords)
	stopProducing()
	<-produced

	if len(acks.failed) > 0 {
		t.Fatalf("%d of %d produces failed, first: %v", len(acks.failed), acks.issued, acks.failed[0])
	}
	acked := acks.snapshot()
	tc.waitCaughtUp(t, topic, acked)
	tc.waitSameEnd(t, topic)
	tc.checkReplicas(t, topic, acked)
	t.Logf("%d records acknowledged", len(acked))
}

// partitionLedBy returns a partition of topic led by node, handing one to
// it when none is.
func partitionLedBy(ctx context.Context, t *testing.T, tc *testCluster, topic string, node int32) int32 {
	t.Helper()
	for i := range int32(failoverPartitions) {
		if tc.leaderOf(topic, i) == node {
			return i
		}
	}
	if err := tc.servers[node].Cluster().TransferLeader(ctx, topic, 0, node); err != nil {
		t.Fatalf("hand %s-0 to node %d: %v", topic, node, err)
	}
	deadline := time.Now().Add(failoverStageWaitMax)
	for tc.leaderOf(topic, 0) != node {
		if time.Now().After(deadline) {
			t.Fatalf("node %d never led %s-0", node, topic)
		}
		time.Sleep(5 * time.Millisecond) // polling the leaders the nodes report
	}
	return 0
}

// majorityLeader waits until the nodes other than the isolated one agree
// on a leader among themselves, which serves the partition, and returns it.
func (tc *testCluster) majorityLeader(topic string, index int32) int32 {
	tc.t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		lead, agreed := int32(-1), true
		for id, s := range tc.servers {
			if id == isolated {
				continue
			}
			l, err := s.Cluster().Leader(topic, index)
			if err != nil || l.Node < 1 || l.Node == isolated || (lead != -1 && l.Node != lead) || l.Local != (l.Node == id) {
				agreed = false
				break
			}
			lead = l.Node
		}
		if agreed {
			return lead
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("no leader of %s-%d among the majority after %s", topic, index, failoverStageWaitMax)
		}
		time.Sleep(5 * time.Millisecond) // polling state across nodes: no one event to wait on
	}
}

// waitSameEnd waits until every node's replica of every partition has the
// same high watermark and log end: the old leader's tail, appended while
// it was cut off and never committed, is truncated once it follows again.
func (tc *testCluster) waitSameEnd(t *testing.T, topic string) {
	t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for index := range int32(failoverPartitions) {
		for {
			same, ends := true, map[int32][2]int64{}
			var first [2]int64
			for id, s := range tc.servers {
				p, err := s.Cluster().Partition(topic, index)
				if err != nil {
					t.Fatalf("node %d: %v", id, err)
				}
				end := [2]int64{p.HighWatermark(), p.LogEndOffset()}
				ends[id] = end
				if len(ends) == 1 {
					first = end
				}
				same = same && end == first && end[0] == end[1]
			}
			if same {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s-%d: the replicas' high watermark and log end stay %v", topic, index, ends)
			}
			time.Sleep(5 * time.Millisecond) // polling another node's catch-up
		}
	}
}
