package integration

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterProcessRenewsDamagedReplica: three `cairn serve` processes
// under an acks=all producer; a follower of partition 0 is stopped, the
// first segment of its copy cut to half (damage below the recovery point,
// which recovery must not repair) and started again. It refuses the
// damaged files, asks for a new copy and gets one from the leader with no
// operator step: every partition is back to three in-sync replicas, and
// every acknowledged record is on every node's disk, once, at its offset.
func TestClusterProcessRenewsDamagedReplica(t *testing.T) {
	nodes := startCairnCluster(t)
	const topic = "renewed"
	cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", "3", "--replication-factor", "3")
	waitDescribed(t, nodes[1], topic)

	ctx, cancel := context.WithTimeout(context.Background(), 4*clusterStageWaitMax)
	defer cancel()
	acks, stopProducing := produceInBackground(ctx, t, nodes, topic, kgo.MetadataMinAge(250*time.Millisecond))
	defer stopProducing()

	acks.waitAcked(t, clusterStageRecords)
	lead := leaderOf(ctx, t, nodes, topic, 0)
	victim := nodes[lead%3] // another node than the leader
	victim.Stop()
	segment := filepath.Join(victim.dataDir, topic+"-0", "00000000000000000000.log")
	info, err := os.Stat(segment)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segment, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	victim.Restart()
	acks.waitAcked(t, acks.count()+clusterStageRecords)
	deadline := time.Now().Add(clusterStageWaitMax)
	for !strings.Contains(victim.stderr.String(), "renewing a damaged replica: a new one on this node copies the partition") {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node did not ask to renew its damaged replica within %s\nstderr:\n%s", clusterStageWaitMax, victim.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // polling another process's log
	}
	waitDescribed(t, nodes[(lead+1)%3], topic)
	acks.waitAcked(t, acks.count()+clusterStageRecords)
	stopProducing()

	acks.mu.Lock()
	acked := maps.Clone(acks.acks)
	acks.mu.Unlock()
	stopAndCheckHeld(t, nodes, topic, ackedEnds(acked), acked)
	t.Logf("node at %s renewed its damaged replica of %s-0; %d records acknowledged at acks=all, each once at its offset on the three nodes",
		victim.kafkaAddr, topic, len(acked))
}
