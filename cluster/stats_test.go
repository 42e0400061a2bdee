package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// commitsObserved is how many proposals the commit latency histogram has
// seen in this process.
func commitsObserved(t *testing.T) uint64 {
	t.Helper()
	var m dto.Metric
	if err := commitSeconds.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// sumStats adds a figure over the running nodes.
func (tn *testNodes) sumStats(f func(NodeStats) int) int {
	n := 0
	for _, c := range tn.nodes {
		n += f(c.Stats())
	}
	return n
}

// TestNodeStatsMove: on three nodes with an RF 3 topic, every partition is
// counted as led by exactly one node, each won by an election some node
// started; every node names the metadata leader; idle groups quiesce on
// every node; an acknowledged append is timed from proposal to apply and
// sends Raft messages; a follower stopped is counted under-replicated by
// the leader of each partition, one replica not caught up each, and every
// partition keeps a leader.
func TestNodeStatsMove(t *testing.T) {
	tn := startNodes(t, 3)
	const partitions = 3
	if _, err := tn.nodes[1].CreateTopicReplicated("stats", partitions, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("stats", 0)
	for p := range int32(partitions) {
		tn.leader("stats", p)
	}
	if got := tn.sumStats(func(s NodeStats) int { return s.Leaders }); got != partitions {
		t.Fatalf("nodes count %d leaders, want %d", got, partitions)
	}
	waitUntil(t, "the ready leaders counted as elections won", func() bool {
		return tn.sumStats(func(s NodeStats) int { return int(s.ElectionsWon) }) >= partitions
	})
	if got := tn.sumStats(func(s NodeStats) int { return int(s.ElectionsStarted) }); got < partitions {
		t.Fatalf("nodes count %d elections started, want at least %d", got, partitions)
	}
	ctl := tn.controller()
	for id, c := range tn.nodes {
		if got := c.Stats().MetaLeader; got != ctl {
			t.Fatalf("node %d names meta leader %d, want %d", id, got, ctl)
		}
	}
	waitUntil(t, "every partition group quiesced on every node", func() bool {
		return tn.sumStats(func(s NodeStats) int { return s.QuiescedGroups }) == 3*partitions
	})

	commits, sent := commitsObserved(t), tn.nodes[lead].Stats().Transport.MessagesSent
	appendAll(t, tn.nodes[lead], "stats", 0, "a")
	if got := commitsObserved(t); got <= commits {
		t.Fatalf("commit latency observed %d proposals after an append, %d before", got, commits)
	}
	// The transport counts a frame once its write returned, which can be
	// after the follower answered it and the append was acknowledged.
	waitUntil(t, "the leader's Raft messages for the append counted", func() bool {
		return tn.nodes[lead].Stats().Transport.MessagesSent > sent
	})
	// acks=all waited for a quorum: the other follower catches up after.
	waitUntil(t, "every replica in sync with every node up", func() bool {
		st := tn.nodes[lead].Stats()
		return st.UnderReplicated == 0 && st.ReplicasNotCaughtUp == 0
	})

	follower := tn.other(lead)
	tn.stop(follower)
	waitUntil(t, "the stopped follower counted not caught up", func() bool {
		return tn.sumStats(func(s NodeStats) int { return s.ReplicasNotCaughtUp }) == partitions &&
			tn.sumStats(func(s NodeStats) int { return s.UnderReplicated }) == partitions
	})
	if got := tn.sumStats(func(s NodeStats) int { return s.Leaders }); got != partitions {
		t.Fatalf("with one follower stopped the nodes count %d leaders, want %d", got, partitions)
	}
}

// TestHealthFollowsMetaMembership: every node of a running cluster is a
// caught-up member; the last node running, its peers stopped, loses the
// metadata leader and says so; a single node is always healthy.
func TestHealthFollowsMetaMembership(t *testing.T) {
	tn := startNodes(t, 3)
	tn.controller()
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d a caught-up member", id), func() bool { return c.Health() == nil })
	}
	last := tn.controller()
	for id := range tn.nodes {
		if id != last {
			tn.stop(id)
		}
	}
	c := tn.nodes[last]
	waitUntil(t, "the lone node to lose its metadata leader", func() bool { return c.Health() != nil })
	err := c.Health()
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("health of a node alone: %v", err)
	}

	single, err := Open(testEnv(vfs.NewMem()), DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if err := single.Health(); err != nil {
		t.Fatalf("single node: %v", err)
	}
}

// TestHealthReportsAStoppedMetaReplica: a follower's metadata replica told
// by a heartbeat that entries past its log's end are committed stops
// (replica.ErrLogLost: its log lost what it had acknowledged). What it saw
// last still looks caught up, so Health must ask the replica itself.
func TestHealthReportsAStoppedMetaReplica(t *testing.T) {
	tn := startNodes(t, 3)
	lead := tn.controller()
	var follower int32
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d a caught-up member", id), func() bool { return c.Health() == nil })
		if id != lead {
			follower = id
		}
	}
	c := tn.nodes[follower]
	var heartbeat *raftpb.Message
	if err := c.sched.Do(controller.GroupID, func(r *replica.Replica) {
		st := r.Status()
		heartbeat = &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(st.Lead), To: new(r.ID()),
			Term: new(st.GetTerm()), Commit: new(st.GetCommit() + 1000)}
	}); err != nil {
		t.Fatal(err)
	}
	c.sched.Deliver(controller.GroupID, heartbeat)
	waitUntil(t, "the follower's metadata replica to stop", func() bool {
		var err error
		_ = c.sched.Do(controller.GroupID, func(r *replica.Replica) { err = r.Err() })
		return errors.Is(err, replica.ErrLogLost)
	})
	err := c.Health()
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "metadata replica stopped") {
		t.Fatalf("health of a node whose metadata replica stopped: %v", err)
	}
	if err := tn.nodes[lead].Health(); err != nil {
		t.Fatalf("the leader's health: %v", err)
	}
}

// TestQuiescedPartitionsFailOver: partitions whose groups quiesced elect
// new leaders when their leader's node stops, well before the leader
// table's liveness timeout (3 s) would wake them: frames to the stopped
// node are dropped, and the transport's unreachable report wakes every
// group with a replica there.
func TestQuiescedPartitionsFailOver(t *testing.T) {
	tn := startNodes(t, 3)
	const partitions = 3
	if _, err := tn.nodes[1].CreateTopicReplicated("quiet", partitions, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		tn.leader("quiet", p)
	}
	waitUntil(t, "every partition group quiesced on every node", func() bool {
		return tn.sumStats(func(s NodeStats) int { return s.QuiescedGroups }) == 3*partitions
	})
	lead := tn.leader("quiet", 0)
	stopped := time.Now()
	tn.stop(lead)
	next := tn.leader("quiet", 0)
	if elapsed := time.Since(stopped); next == lead || elapsed >= 3*time.Second {
		t.Fatalf("after node %d stopped, partition 0 led by %d after %s", lead, next, elapsed)
	}
	appendAll(t, tn.nodes[next], "quiet", 0, "after")
}
