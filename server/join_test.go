package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// joinWaitMax bounds each wait of the join tests: a join, a move, a
// refill.
const joinWaitMax = 60 * time.Second

// startJoined starts node id with --join through node 1 and its own Raft
// address, on a new filesystem. A port taken between picking and binding
// is retried at the same address: the member registered it already.
func (tc *testCluster) startJoined(id int32) {
	tc.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tc.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if tc.joined == nil {
		tc.joined = map[int32]string{}
	}
	tc.joined[id], tc.fs[id], tc.kafka[id] = addr, vfs.NewMem(), "127.0.0.1:0"
	tc.restart(id)
}

// joinedConfig is node id's configuration when it joined (startJoined).
func (tc *testCluster) joinedConfig(id int32) Config {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", tc.kafka[id], "127.0.0.1:0"
	cfg.NodeID, cfg.Join, cfg.RaftAddr, cfg.Rack = id, tc.peers[1], tc.joined[id], fmt.Sprintf("rack-%d", id)
	return cfg
}

// produceAcked produces n records with acks=all round-robin over the
// topic's partitions, each value unique (prefix-k), and returns where each
// was acknowledged.
func produceAcked(ctx context.Context, t *testing.T, client *kgo.Client, topic string, partitions int32, prefix string, n int) map[string]ack {
	t.Helper()
	acked := map[string]ack{}
	for k := range n {
		r := &kgo.Record{Topic: topic, Partition: int32(k) % partitions, Value: fmt.Appendf(nil, "%s-%d", prefix, k)}
		res := client.ProduceSync(ctx, r)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", r.Value, err)
		}
		got := res[0].Record
		acked[string(got.Value)] = ack{partition: got.Partition, offset: got.Offset}
	}
	return acked
}

// waitUntil polls cond (state across nodes: no one event to wait on)
// until it holds, or fails after joinWaitMax.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(joinWaitMax)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, joinWaitMax)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// createWith creates topic with partitions of RF 3 through kadm and
// waits for every partition's leader.
func createWith(ctx context.Context, t *testing.T, tc *testCluster, client *kgo.Client, topic string, partitions int32) {
	t.Helper()
	res, err := kadm.NewClient(client).CreateTopic(ctx, partitions, 3, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	for i := range partitions {
		tc.leaderOf(topic, i)
	}
}

// checkLocalReplicas waits until node id's replica of every partition it
// holds has applied every acknowledged record, then reads them there.
func (tc *testCluster) checkLocalReplicas(t *testing.T, id int32, topic string, acked map[string]ack) int {
	t.Helper()
	s := tc.servers[id]
	top, ok := s.Cluster().Topic(topic)
	if !ok {
		t.Fatalf("node %d does not know %s", id, topic)
	}
	need := map[int32]int64{}
	for _, a := range acked {
		need[a.partition] = max(need[a.partition], a.offset+1)
	}
	held := 0
	for index, slot := range top.Partitions {
		if !slices.Contains(slot.Replicas, id) {
			continue
		}
		p, err := s.Cluster().Partition(topic, int32(index))
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		waitUntil(t, fmt.Sprintf("node %d applies %s-%d to %d", id, topic, index, need[int32(index)]), func() bool {
			return p.HighWatermark() >= need[int32(index)]
		})
		checkAcked(t, fmt.Sprintf("node %d %s-%d", id, topic, index), int32(index), replicaRecords(t, p), acked)
		held++
	}
	return held
}

// A fourth server started with --join (a member's Raft address, no
// peers) joins the running cluster: it becomes ACTIVE, SpreadOnto (what
// "cairn cluster add-node" runs) moves a fair share of the replicas onto
// it, and its replicas hold every record acknowledged before; it restarts
// with the same flags from its own data after the join.
func TestServerJoinsAndTakesReplicas(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*joinWaitMax)
	defer cancel()
	const topic, partitions = "spread", 6
	client := newFailoverClient(t, tc, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createWith(ctx, t, tc, client, topic, partitions)
	acked := produceAcked(ctx, t, client, topic, partitions, "before", 120)

	tc.startJoined(4)
	joined := tc.servers[4].Cluster()
	waitUntil(t, "node 4 ACTIVE", func() bool {
		return joined.NodeState(4) == "ACTIVE" && tc.servers[1].Cluster().NodeState(4) == "ACTIVE"
	})
	if inc := joined.Incarnation(); inc != 1 {
		t.Fatalf("node 4 joined as incarnation %d, want 1", inc)
	}
	moves, err := joined.SpreadOnto(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := partitions * 3 / 4; len(moves) != want {
		t.Fatalf("%d moves onto node 4, want %d: %+v", len(moves), want, moves)
	}
	for id, s := range tc.servers {
		waitUntil(t, fmt.Sprintf("node %d sees the moves done", id), func() bool {
			top, _ := s.Cluster().Topic(topic)
			onto := 0
			for _, slot := range top.Partitions {
				if slices.Contains(slot.Replicas, 4) {
					onto++
				}
			}
			return len(s.Cluster().Reassignments()) == 0 && onto == len(moves)
		})
	}
	for _, s := range tc.servers {
		if _, err := s.Cluster().RebalanceLeaders(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "node 4 leads its share of the partitions", func() bool {
		led := 0
		for i := range int32(partitions) {
			if l, err := joined.Leader(topic, i); err == nil && l.Local {
				led++
			}
		}
		return led >= partitions/4
	})
	if held := tc.checkLocalReplicas(t, 4, topic, acked); held != len(moves) {
		t.Fatalf("node 4 holds %d replicas, want %d", held, len(moves))
	}
	if again, err := joined.SpreadOnto(ctx, 4); err != nil || len(again) != 0 {
		t.Fatalf("SpreadOnto again: %d moves, %v; want none", len(again), err)
	}

	more := produceAcked(ctx, t, client, topic, partitions, "after", 60)
	tc.stop(4)
	tc.restart(4)
	waitUntil(t, "node 4 ACTIVE after its restart", func() bool { return tc.servers[4].Cluster().NodeState(4) == "ACTIVE" })
	for v, a := range more {
		acked[v] = a
	}
	tc.checkLocalReplicas(t, 4, topic, acked)
}

// A server of the initial three whose data directory was wiped, started
// again with the same flags, finds the cluster existing: it rejoins under
// incarnation 2 (its incarnation 1 replicas, which it no longer has,
// never vote again: the metadata leader replaces them), its partition
// replicas are refilled from the others, and it holds every record
// acknowledged before the wipe and while it was away.
func TestServerWipedNodeRejoins(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*joinWaitMax)
	defer cancel()
	const topic, partitions = "wiped", 3
	client := newFailoverClient(t, tc, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	createWith(ctx, t, tc, client, topic, partitions)
	acked := produceAcked(ctx, t, client, topic, partitions, "before", 60)

	const victim = 3
	tc.stop(victim)
	tc.fs[victim] = vfs.NewMem()
	for v, a := range produceAcked(ctx, t, client, topic, partitions, "away", 60) {
		acked[v] = a
	}
	tc.restart(victim)
	back := tc.servers[victim].Cluster()
	if inc := back.Incarnation(); inc != 2 {
		t.Fatalf("the wiped node came back as incarnation %d, want 2", inc)
	}
	tc.waitRefilled(t, victim, topic, partitions)
	if held := tc.checkLocalReplicas(t, victim, topic, acked); held != partitions {
		t.Fatalf("the rejoined node holds %d replicas, want %d", held, partitions)
	}
	for id := range tc.servers {
		tc.checkLocalReplicas(t, id, topic, acked)
	}
}

// A server that joined (registered, added as a learner, node.json and an
// empty meta log written) and stopped before the leader's snapshot
// reached it starts again with the same --join flags: it asks the member
// again under node.json's nonce, keeps its incarnation, gets the snapshot
// and becomes ACTIVE.
func TestServerJoinRestartedBeforeTheSnapshot(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), joinWaitMax)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// What the first start left: the member's registration, node.json and
	// the empty meta log, in that order.
	nonce := []byte("0123456789abcdef")
	answer, err := controller.JoinByAddress(ctx, tc.peers[1], 4, addr, nonce, nil)
	if err != nil {
		t.Fatal(err)
	}
	fsys := vfs.NewMem()
	empty, err := raftlog.CreateEmpty(fsys, "/data/meta/log", storage.DefaultConfig(), controller.GroupID, meta.ReplicaID(4, answer.Incarnation), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Close(); err != nil {
		t.Fatal(err)
	}
	ident, err := json.Marshal(controller.Identity{Version: 2, ClusterID: answer.ClusterID, NodeID: 4, Incarnation: answer.Incarnation, Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, "/data/"+controller.NodeFileName, ident); err != nil {
		t.Fatal(err)
	}
	tc.joined = map[int32]string{4: addr}
	tc.fs[4], tc.kafka[4] = fsys, "127.0.0.1:0"
	tc.restart(4)
	back := tc.servers[4].Cluster()
	waitUntil(t, "node 4 ACTIVE", func() bool { return back.NodeState(4) == "ACTIVE" })
	if back.Incarnation() != answer.Incarnation {
		t.Fatalf("node 4 is incarnation %d, registered as %d", back.Incarnation(), answer.Incarnation)
	}
	if got := len(back.Brokers()); got != 4 {
		t.Fatalf("node 4 lists %d brokers, want 4", got)
	}
}

// waitRefilled waits until no move is running on any node, every
// partition of topic (of partitions) has its three replicas in sync,
// victim among them, on its leader, and victim is ACTIVE.
func (tc *testCluster) waitRefilled(t *testing.T, victim int32, topic string, partitions int) {
	t.Helper()
	back := tc.servers[victim].Cluster()
	for id, s := range tc.servers {
		waitUntil(t, fmt.Sprintf("node %d sees every partition refilled and in sync", id), func() bool {
			if len(s.Cluster().Reassignments()) > 0 {
				return false
			}
			for i := range int32(partitions) {
				l, err := s.Cluster().Leader(topic, i)
				if err != nil || !l.Local {
					continue
				}
				if in := s.Cluster().InSync(topic, i); !slices.Contains(in, victim) || len(in) != 3 {
					return false
				}
			}
			return back.NodeState(victim) == "ACTIVE"
		})
	}
}
