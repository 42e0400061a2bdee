package replica

import (
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// memNet connects the schedulers of several nodes in memory; replica id =
// node id in every group.
type memNet struct {
	nodes      map[uint64]*Scheduler
	deliveries atomic.Int64
	// drop, when set, loses the messages it returns true for; it runs on
	// the senders' workers.
	drop func(m *raftpb.Message) bool
}

func (n *memNet) Send(groupID uint64, msgs []*raftpb.Message) {
	for _, m := range msgs {
		if n.drop != nil && n.drop(m) {
			continue
		}
		if to := n.nodes[m.GetTo()]; to != nil { // else unreachable: lost
			n.deliveries.Add(1)
			to.Deliver(groupID, proto.Clone(m).(*raftpb.Message))
		}
	}
}

// settle waits until every node is idle with no message delivered since
// the pass began.
func (n *memNet) settle(t *testing.T) {
	t.Helper()
	for range 1000 {
		before := n.deliveries.Load()
		for _, id := range []uint64{1, 2, 3} {
			if s := n.nodes[id]; s != nil && !s.waitIdle() {
				t.Fatal("scheduler closed")
			}
		}
		if n.deliveries.Load() == before {
			return
		}
	}
	t.Fatal("nodes still busy after 1000 passes")
}

// addSoloGroups adds groups 1 to n, each of one voter (replica 1) on a
// list state machine, to s.
func addSoloGroups(t *testing.T, s *Scheduler, n uint64) {
	t.Helper()
	for g := uint64(1); g <= n; g++ {
		st := NewBootstrapStorage([]uint64{1})
		r, err := New(testEnv(), Config{ID: 1, GroupID: g}, st, &listSM{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddGroup(g, r, st, GroupOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func testEnv() env.Env {
	// The manual clock is never advanced: tests tick by calling Tick.
	return env.Env{Clock: env.NewManualClock(time.Unix(0, 0)), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// on runs f on a group's worker, where the replica and its state machine
// may be read.
func on(t *testing.T, s *Scheduler, groupID uint64, f func(r *Replica)) {
	t.Helper()
	if err := s.Do(groupID, f); err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerReplicates: three nodes with ten groups each on two workers
// apiece elect the leaders they are told to, and replicate a proposal in
// every group to every node.
func TestSchedulerReplicates(t *testing.T) {
	const groups = 10
	net := &memNet{nodes: map[uint64]*Scheduler{}}
	sms := map[[2]uint64]*listSM{}
	reads := make(chan raft.ReadState, 1)
	for node := uint64(1); node <= 3; node++ {
		s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 2, SyncWorkers: 1}, net)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		net.nodes[node] = s
	}
	for node := uint64(1); node <= 3; node++ {
		for g := uint64(1); g <= groups; g++ {
			st := NewBootstrapStorage([]uint64{1, 2, 3})
			sm := &listSM{}
			r, err := New(testEnv(), Config{ID: node, GroupID: g}, st, sm)
			if err != nil {
				t.Fatal(err)
			}
			sms[[2]uint64{node, g}] = sm
			opts := GroupOptions{OnReadState: func(rs raft.ReadState) { reads <- rs }}
			if err := net.nodes[node].AddGroup(g, r, st, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	leaderOf := func(g uint64) uint64 { return 1 + g%3 }
	for g := uint64(1); g <= groups; g++ {
		var err error
		on(t, net.nodes[leaderOf(g)], g, func(r *Replica) { err = r.Campaign() })
		if err != nil {
			t.Fatal(err)
		}
	}
	net.settle(t)
	for g := uint64(1); g <= groups; g++ {
		var err error
		on(t, net.nodes[leaderOf(g)], g, func(r *Replica) {
			_, err = r.Propose(Proposal{Data: []byte("v")})
		})
		if err != nil {
			t.Fatalf("group %d: propose on node %d: %v", g, leaderOf(g), err)
		}
	}
	net.settle(t)
	for _, s := range net.nodes {
		s.Tick() // a heartbeat carries the commit index to every follower
	}
	net.settle(t)
	for node := uint64(1); node <= 3; node++ {
		for g := uint64(1); g <= groups; g++ {
			var applied []string
			on(t, net.nodes[node], g, func(*Replica) { applied = slices.Clone(sms[[2]uint64{node, g}].applied) })
			if !slices.Equal(applied, []string{"v@3"}) {
				t.Errorf("node %d group %d applied %v, want [v@3]", node, g, applied)
			}
		}
	}
	// A peer reported unreachable is probed again rather than streamed to.
	progressOf2 := func() tracker.StateType {
		var st tracker.StateType
		on(t, net.nodes[1], 3, func(r *Replica) { st = r.Status().Progress[2].State })
		return st
	}
	if got := progressOf2(); got != tracker.StateReplicate {
		t.Fatalf("leader 1 of group 3 replicates to 2 in state %s", got)
	}
	net.nodes[1].ReportUnreachable(3, 2)
	if got := progressOf2(); got != tracker.StateProbe {
		t.Fatalf("after ReportUnreachable, state %s, want probe", got)
	}
	// A read on a follower goes through the leader and comes back to the
	// follower's hook with the commit index.
	on(t, net.nodes[1], 1, func(r *Replica) { r.ReadIndex([]byte("r")) })
	net.settle(t)
	select {
	case rs := <-reads:
		if string(rs.RequestCtx) != "r" || rs.Index != 3 {
			t.Errorf("read state %q at %d, want r at 3", rs.RequestCtx, rs.Index)
		}
	default:
		t.Error("no read state after the read settled")
	}
}

// TestSchedulerTicks: the ticker ticks groups from the env's clock: a
// replica whose peers never answer starts a pre-vote once its election
// timeout (12 to 23 ticks) has passed, and not before.
func TestSchedulerTicks(t *testing.T) {
	clock := env.NewManualClock(time.Unix(0, 0))
	e := testEnv()
	e.Clock = clock
	s, err := NewScheduler(e, SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: 50 * time.Millisecond}, &memNet{nodes: map[uint64]*Scheduler{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := NewBootstrapStorage([]uint64{1, 2, 3})
	r, err := New(testEnv(), Config{ID: 1}, st, &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroup(7, r, st, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	state := func() raft.StateType {
		var st raft.StateType
		on(t, s, 7, func(r *Replica) { st = r.Status().RaftState })
		return st
	}
	for i := range 24 {
		if i == 11 {
			if got := state(); got != raft.StateFollower {
				t.Fatalf("after 11 ticks: %s, want a follower still", got)
			}
		}
		next := clock.Now().Add(50 * time.Millisecond)
		if err := clock.WaitArmed(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		clock.Advance(50 * time.Millisecond)
		s.waitIdle()
	}
	// The last tick may still be on its way from the timer to the groups.
	if err := clock.WaitArmed(t.Context(), clock.Now().Add(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	s.waitIdle()
	if got := state(); got != raft.StatePreCandidate {
		t.Fatalf("after 24 ticks: %s, want a pre-candidate", got)
	}
}

// TestSchedulerIdleGroupsCostNoGoroutines: a thousand groups run on the
// scheduler's fixed goroutines (two workers, one sync worker, the ticker),
// and all of them elect themselves.
func TestSchedulerIdleGroupsCostNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 2, SyncWorkers: 1}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	const groups = 1000
	addSoloGroups(t, s, groups)
	for g := uint64(1); g <= groups; g++ {
		on(t, s, g, func(r *Replica) { _ = r.Campaign() })
	}
	s.waitIdle()
	if extra := runtime.NumGoroutine() - before; extra > 4 {
		t.Errorf("%d goroutines for %d groups, want the scheduler's 4", extra, groups)
	}
	for g := uint64(1); g <= groups; g++ {
		var l Leadership
		on(t, s, g, func(r *Replica) { l = r.Leadership() })
		if !l.Ready {
			t.Fatalf("group %d: %+v, want a ready single voter", g, l)
		}
	}
	s.Close()
	if err := s.Do(1, func(*Replica) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

// TestSchedulerSyncFailure: a group whose storage fails to sync stops;
// another on the same scheduler goes on.
func TestSchedulerSyncFailure(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for g := uint64(1); g <= 2; g++ {
		st := NewBootstrapStorage([]uint64{1})
		if g == 1 {
			st.FailSyncs()
		}
		r, err := New(testEnv(), Config{ID: 1, GroupID: g}, st, &listSM{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddGroup(g, r, st, GroupOptions{}); err != nil {
			t.Fatal(err)
		}
		on(t, s, g, func(r *Replica) { _ = r.Campaign() })
	}
	s.waitIdle()
	var failed error
	var ready bool
	on(t, s, 1, func(r *Replica) { failed = r.Err() })
	on(t, s, 2, func(r *Replica) { ready = r.Leadership().Ready })
	if !errors.Is(failed, ErrSyncFailed) || !ready {
		t.Fatalf("group 1 error %v (want a failed sync), group 2 ready %v", failed, ready)
	}
	if err := s.Do(3, func(*Replica) {}); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("Do on an unknown group: %v", err)
	}
}

// TestSchedulerDropsMessagesToAnotherReplica: a message for a group whose
// recipient is not the replica the node runs (an earlier replica of the
// group on this node, moved off and back under a new id) is refused by
// the replica (Step), so the new one never answers for the old one; one
// addressed to it is stepped.
func TestSchedulerDropsMessagesToAnotherReplica(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, &memNet{nodes: map[uint64]*Scheduler{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := NewBootstrapStorage([]uint64{1, 2, 3})
	r, err := New(testEnv(), Config{ID: 11}, st, &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroup(7, r, st, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	term := func() uint64 {
		var term uint64
		on(t, s, 7, func(r *Replica) { term = r.Status().GetTerm() })
		return term
	}
	heartbeat := func(to, term uint64) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(to), Term: proto.Uint64(term)}
	}
	start := term()
	s.Deliver(7, heartbeat(1, 5))
	s.waitIdle()
	if got := term(); got != start {
		t.Fatalf("a heartbeat to replica 1 moved replica 11 to term %d", got)
	}
	s.Deliver(7, heartbeat(11, 5))
	s.waitIdle()
	if got := term(); got != 5 {
		t.Fatalf("a heartbeat to replica 11 left it at term %d, want 5", got)
	}
}
