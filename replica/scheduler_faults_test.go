package replica

import (
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// threeNodes starts a scheduler per node on net, each with group 1 of
// voters 1, 2 and 3 over a bootstrap storage, and elects node 1.
func threeNodes(t *testing.T, net *memNet) map[uint64]*MemStorage {
	t.Helper()
	stores := map[uint64]*MemStorage{}
	for node := uint64(1); node <= 3; node++ {
		s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, net)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		net.nodes[node] = s
		stores[node] = NewBootstrapStorage([]uint64{1, 2, 3})
		r, err := New(testEnv(), Config{ID: node, GroupID: 1}, stores[node], &listSM{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddGroup(1, r, stores[node], GroupOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	on(t, net.nodes[1], 1, func(r *Replica) { _ = r.Campaign() })
	net.settle(t)
	return stores
}

// TestSchedulerSnapshotLost: the first snapshot the leader sends a
// follower is lost; the scheduler reports each snapshot once handed to the
// Sender, so the leader probes the follower again and sends another,
// rather than waiting in StateSnapshot for ever.
func TestSchedulerSnapshotLost(t *testing.T) {
	var isolated atomic.Bool
	var snaps atomic.Int64
	net := &memNet{nodes: map[uint64]*Scheduler{}}
	net.drop = func(m *raftpb.Message) bool {
		if m.GetType() == raftpb.MsgSnap && snaps.Add(1) == 1 {
			return true
		}
		return isolated.Load() && (m.GetTo() == 3 || m.GetFrom() == 3)
	}
	stores := threeNodes(t, net)
	isolated.Store(true)
	for _, v := range []string{"a", "b", "c"} {
		on(t, net.nodes[1], 1, func(r *Replica) { _, _ = r.Propose(Proposal{Data: []byte(v)}) })
		net.settle(t)
	}
	var last uint64
	on(t, net.nodes[1], 1, func(r *Replica) {
		last = r.Applied()
		if err := stores[1].CreateSnapshot(last, r.ConfState(), nil); err != nil {
			t.Fatal(err)
		}
	})
	isolated.Store(false)
	match := func() (uint64, tracker.StateType) {
		var pr tracker.Progress
		on(t, net.nodes[1], 1, func(r *Replica) { pr = r.Status().Progress[3] })
		return pr.Match, pr.State
	}
	for range 40 {
		for _, s := range net.nodes {
			s.Tick()
		}
		net.settle(t)
		if m, _ := match(); m >= last {
			break
		}
	}
	if m, st := match(); m < last {
		t.Fatalf("follower 3 matched %d in state %s after 40 ticks, want %d (snapshots sent: %d)", m, st, last, snaps.Load())
	}
	if n := snaps.Load(); n < 2 {
		t.Fatalf("%d snapshots sent, want the lost one and another", n)
	}
}
