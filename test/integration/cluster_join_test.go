package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// raftAddrOf is the --raft-addr a node was started with.
func raftAddrOf(t *testing.T, n *cairnServer) string {
	t.Helper()
	for i, a := range n.extraArgs {
		if a == "--raft-addr" && i+1 < len(n.extraArgs) {
			return n.extraArgs[i+1]
		}
	}
	t.Fatal("the node has no --raft-addr")
	return ""
}

// statusRow is node 4's row of `cairn cluster status`: node, state,
// address, rack, leads, replicas.
var statusRow = regexp.MustCompile(`(?m)^4\s+(\S+)\s+\S+\s+\S+\s+(\d+)\s+(\d+)`)

// TestClusterProcessesJoinAndAddNode: a fourth `cairn serve --join`
// process (a member's Raft address, no --peers) joins three running ones;
// `cairn cluster add-node 4` waits for it to be ACTIVE, moves a fair share
// of the replicas onto it and rebalances the leaders; `cairn cluster
// status` lists it holding them; every record acknowledged before is
// consumed through it alone; and it restarts with the same flags.
func TestClusterProcessesJoinAndAddNode(t *testing.T) {
	nodes := startCairnCluster(t)
	const topic = "joined"
	cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", strconv.Itoa(clusterPartitions), "--replication-factor", "3")
	waitDescribed(t, nodes[0], topic)
	ctx, cancel := context.WithTimeout(context.Background(), 2*clusterStageWaitMax)
	defer cancel()
	producer := newKgo(t, nodes[0].kafkaAddr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	acked := map[string]clusterAck{}
	for k := range 90 {
		r := &kgo.Record{Topic: topic, Partition: int32(k % clusterPartitions), Value: fmt.Appendf(nil, "before-join-%d", k)}
		res := producer.ProduceSync(ctx, r)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", r.Value, err)
		}
		acked[string(r.Value)] = clusterAck{partition: res[0].Record.Partition, offset: res[0].Record.Offset}
	}

	fourth := newCairnServer(t, "", "--node-id", "4", "--raft-addr", freeAddr(t), "--join", raftAddrOf(t, nodes[1]))
	fourth.start()
	added := cairnOK(t, nodes[0], "", "cluster", "add-node", "4")
	want := clusterPartitions * 3 / 4
	for _, line := range []string{"node 4 is ACTIVE", fmt.Sprintf("moved %d partitions", want), fmt.Sprintf("node 4 holds %d replicas", want)} {
		if !strings.Contains(added, line) {
			t.Fatalf("add-node printed no %q:\n%s", line, added)
		}
	}
	status := cairnOK(t, nodes[0], "", "cluster", "status")
	row := statusRow.FindStringSubmatch(status)
	if row == nil || row[1] != "ACTIVE" || row[3] != strconv.Itoa(want) {
		t.Fatalf("cluster status lists node 4 as %q, want ACTIVE with %d replicas:\n%s", row, want, status)
	}
	if again := cairnOK(t, nodes[0], "", "cluster", "add-node", "4"); !strings.Contains(again, "holds its share of the replicas already") {
		t.Fatalf("add-node again printed:\n%s", again)
	}
	consumeThrough(ctx, t, fourth, topic, ackedEnds(acked), acked)
	t.Logf("add-node:\n%s\nstatus:\n%s", added, status)

	fourth.Stop()
	fourth.Restart()
	consumeThrough(ctx, t, fourth, topic, ackedEnds(acked), acked)
}
