package controller

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Nodes added through any member join as learners, get the leader's
// snapshot, are promoted while the group has fewer than three voters and
// become ACTIVE brokers; a fourth stays a learner.
func TestJoinGrowsTheGroupToThreeVoters(t *testing.T) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { testJoinGrows(t, newClusterOf(t, 1, 1000, k.durable)) })
	}
}

func testJoinGrows(t *testing.T, cl *cluster) {
	first := cl.leader()
	propose(t, first.c, createTopic(t, first.c, "before-join", 1))

	second := cl.join(first, 2)
	cl.waitMembers(2, 0)
	third := cl.join(second, 3) // through a follower: forwarded to the leader
	cl.waitMembers(3, 0)
	cl.join(third, 4)
	cl.waitMembers(3, 1)

	for id := int32(2); id <= 4; id++ {
		n := cl.nodes[id]
		propose(t, n.c, allocate(id))
		if n.c.Identity().Incarnation != 1 {
			t.Fatalf("node %d incarnation %d", id, n.c.Identity().Incarnation)
		}
	}
	waitFor(t, "every broker active", func() bool {
		for _, b := range cl.leader().c.State().Brokers {
			if b.State != metav1.BrokerState_BROKER_STATE_ACTIVE {
				return false
			}
		}
		return true
	})
	cl.stop(4) // a joined node restarts from its own log
	cl.start(4)
	st := cl.converge(cl.leader().c.Applied())
	state, err := meta.UnmarshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Brokers) != 4 || len(state.Topics) != 1 {
		t.Fatalf("brokers %v topics %v", state.Brokers, state.Topics)
	}
}

// waitMembers waits until the leader's configuration has voters voters and
// learners learners.
func (cl *cluster) waitMembers(voters, learners int) {
	cl.t.Helper()
	waitFor(cl.t, "the meta group's members", func() bool {
		cs, err := cl.leader().c.Configuration()
		if err != nil {
			return false
		}
		return len(cs.GetVoters()) == voters && len(cs.GetLearners()) == learners &&
			!slices.ContainsFunc(cs.GetVoters(), func(id uint64) bool { return id == 0 })
	})
}

// loseFirst drops the first frame of type typ a node sends.
type loseFirst struct {
	FrameSender
	typ  transport.FrameType
	lost atomic.Bool
}

func (l *loseFirst) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	if typ == l.typ && l.lost.CompareAndSwap(false, true) {
		return nil // sent, as far as the caller knows
	}
	return l.FrameSender.SendFrame(to, typ, payload)
}

// A registration forwarded to the leader whose result is lost is proposed
// again with the same nonce: the node keeps the one incarnation the first
// proposal made instead of burning a second.
func TestJoinRetriedAfterALostResultKeepsOneIncarnation(t *testing.T) {
	var losers sync.Map // node id → *loseFirst
	cl := &cluster{proposeTimeout: time.Second}
	cl.wrap = func(id int32, s FrameSender) FrameSender {
		l := &loseFirst{FrameSender: s, typ: transport.FrameMetaProposeResult}
		losers.Store(id, l)
		return l
	}
	cl.init(t, 3, 1000, false)
	follower := cl.follower()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	incarnation, err := follower.c.AddNode(ctx, 4, freeAddrs(t, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	l, _ := losers.Load(int32(transport.NodeOf(cl.leader().c.Leadership().Leader)))
	if !l.(*loseFirst).lost.Load() {
		t.Fatal("the leader lost no result: the retry was not exercised")
	}
	b, ok := brokerOf(cl.leader().c, 4)
	if incarnation != 1 || !ok || b.Incarnation != 1 {
		t.Fatalf("AddNode gave incarnation %d, the broker is %v", incarnation, b)
	}
}

// The membership round removes a replaced member only when that leaves
// the group a quorum of voters, never the leader, and never a replica the
// leader heard from within an election timeout.
func TestRemovable(t *testing.T) {
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}
	st := raft.Status{Progress: map[uint64]tracker.Progress{1: {RecentActive: true}, 2: {RecentActive: true}, 3: {}, 4: {}}}
	for _, tc := range []struct {
		name   string
		id     uint64
		cs     *raftpb.ConfState
		expect bool
	}{
		{"silent voter of three", 3, cs, true},
		{"silent learner", 4, cs, true},
		{"the leader", 1, cs, false},
		{"a live voter", 2, cs, false},
		{"silent voter of two", 3, &raftpb.ConfState{Voters: []uint64{1, 3}}, false},
		{"the last voter", 3, &raftpb.ConfState{Voters: []uint64{3}}, false},
	} {
		if got := removable(tc.id, 1, tc.cs, st); got != tc.expect {
			t.Errorf("%s: removable = %v, want %v", tc.name, got, tc.expect)
		}
	}
}

// A node joining with the controller's own raftlog starts with an empty
// meta log and survives restarts before the leader's snapshot arrives: a
// leftover empty log of an earlier attempt (another incarnation, no
// node.json) is made again under its replica id, node.json follows the
// log, and a restart with node.json and the still empty log waits again
// rather than refusing it as lost. Once the only member is back, the node
// gets the snapshot, becomes ACTIVE and restarts from its own log.
func TestJoinWithOwnLogSurvivesRestartsBeforeTheSnapshot(t *testing.T) {
	cl := newClusterOf(t, 1, 1000, true)
	first := cl.leader()
	propose(t, first.c, createTopic(t, first.c, "before-join", 1))
	addr := freeAddrs(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	incarnation, err := first.c.AddNode(ctx, 4, addr)
	if err != nil {
		t.Fatal(err)
	}
	cl.peers[4], cl.joined[4], cl.logs[4] = addr, incarnation, replica.NewMemStorage()
	cl.stop(1) // nobody can send node 4 anything

	metaDir := filepath.Join(cl.dir(4), MetaDirName)
	e := testEnv(cl.fs, 4)
	left, err := createEmptyMetaLog(e, metaDir, 1<<20, meta.ReplicaID(4, incarnation+5))
	if err != nil {
		t.Fatal(err)
	}
	if err := left.Close(); err != nil {
		t.Fatal(err)
	}
	n := cl.start(4)
	if !n.c.own.isEmpty() {
		t.Fatal("the joining node's meta log is not empty")
	}
	st, err := raftlog.ReadState(cl.fs, filepath.Join(metaDir, metaLogDirName, "raft-state"))
	if err != nil || st.ReplicaID != meta.ReplicaID(4, incarnation) {
		t.Fatalf("the empty log's raft-state: %+v, %v; want replica %x", st, err, meta.ReplicaID(4, incarnation))
	}
	if id, err := OpenIdentity(cl.fs, cl.dir(4), 4, cl.clusterID); err != nil || id.New || id.Incarnation != incarnation {
		t.Fatalf("node.json after the join's start: %+v, %v", id, err)
	}
	cl.stop(4)
	cl.start(4) // node.json and an empty log: still waiting for the snapshot
	cl.start(1)
	waitFor(t, "node 4 active with the state", func() bool {
		b, ok := brokerOf(cl.nodes[4].c, 4)
		_, topic := findTopic(cl.nodes[4].c.State(), "before-join")
		return ok && topic && b.State == metav1.BrokerState_BROKER_STATE_ACTIVE && b.Incarnation == incarnation
	})
	cl.stop(4)
	n = cl.start(4)
	if n.c.own.isEmpty() {
		t.Fatal("the joined node's meta log is empty after a restart")
	}
	if _, ok := findTopic(n.c.State(), "before-join"); !ok {
		t.Fatal("the joined node restarted without the state")
	}
}

// TestConfChangeTakesASnapshot: a node takes a snapshot once it applied a
// configuration change, long before SnapshotEntries more entries. The
// meta log stores no commit index, so a restart takes the configuration
// of the last snapshot: a node that applied a promotion came back without
// it, and holding the longest log asked only the old voters for votes
// (the cluster simulation's seeds 93, 138: no leader with one of them cut
// off).
func TestConfChangeTakesASnapshot(t *testing.T) {
	cl := newClusterOf(t, 1, 1000, false)
	first := cl.leader()
	cl.join(first, 2)
	cl.waitMembers(2, 0)
	waitFor(t, "each node's snapshot in the two-voter configuration", func() bool {
		for id := range cl.nodes {
			snap, err := cl.logs[id].Snapshot()
			if err != nil || len(snap.GetMetadata().GetConfState().GetVoters()) != 2 {
				return false
			}
		}
		return true
	})
}
