package replica

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// quiesceNodes are three schedulers over a memNet whose groups may
// quiesce, with each node's liveness set by the test.
type quiesceNodes struct {
	t     *testing.T
	net   *memNet
	alive map[uint64]*atomic.Bool
	sms   map[[2]uint64]*listSM
}

// startQuiescedGroups starts groups groups on three nodes, each led by
// its preferred node, commits one entry in each and ticks until every
// group is quiesced on every node.
func startQuiescedGroups(t *testing.T, groups int) *quiesceNodes {
	t.Helper()
	qn := startQuiesceNodes(t, uint64(groups))
	for g := uint64(1); g <= uint64(groups); g++ {
		var err error
		on(t, qn.net.nodes[qn.leaderOf(g)], g, func(r *Replica) { err = r.Campaign() })
		if err != nil {
			t.Fatal(err)
		}
	}
	qn.net.settle(t)
	for g := uint64(1); g <= uint64(groups); g++ {
		qn.propose(g, "v")
	}
	qn.net.settle(t)
	for range 5 {
		qn.tick(1, 2, 3)
	}
	if !qn.quiesced(groups) {
		t.Fatalf("quiesced groups per node %d %d %d, want %d each",
			qn.net.nodes[1].Quiesced(), qn.net.nodes[2].Quiesced(), qn.net.nodes[3].Quiesced(), groups)
	}
	return qn
}

func startQuiesceNodes(t *testing.T, groups uint64) *quiesceNodes {
	qn := &quiesceNodes{t: t, net: &memNet{nodes: map[uint64]*Scheduler{}}, alive: map[uint64]*atomic.Bool{}, sms: map[[2]uint64]*listSM{}}
	for node := uint64(1); node <= 3; node++ {
		qn.alive[node] = new(atomic.Bool)
		qn.alive[node].Store(true)
	}
	for node := uint64(1); node <= 3; node++ {
		cfg := SchedulerConfig{Workers: 2, SyncWorkers: 1, Alive: func(id uint64) bool { return qn.alive[id].Load() }}
		s, err := NewScheduler(testEnv(), cfg, qn.net)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		qn.net.nodes[node] = s
		for g := uint64(1); g <= groups; g++ {
			st := NewBootstrapStorage([]uint64{1, 2, 3})
			sm := &listSM{}
			r, err := New(testEnv(), Config{ID: node, GroupID: g}, st, sm)
			if err != nil {
				t.Fatal(err)
			}
			qn.sms[[2]uint64{node, g}] = sm
			if err := s.AddGroup(g, r, st, GroupOptions{Quiesce: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return qn
}

// leaderOf is the node told to campaign in group g.
func (qn *quiesceNodes) leaderOf(g uint64) uint64 { return 1 + g%3 }

// tick gives every node in nodes one tick and lets the messages settle.
func (qn *quiesceNodes) tick(nodes ...uint64) {
	for _, n := range nodes {
		qn.net.nodes[n].Tick()
	}
	qn.net.settle(qn.t)
}

// quiesced reports whether every group is quiesced on every node.
func (qn *quiesceNodes) quiesced(groups int) bool {
	for _, s := range qn.net.nodes {
		if s.Quiesced() != groups {
			return false
		}
	}
	return true
}

func (qn *quiesceNodes) propose(g uint64, data string) {
	qn.t.Helper()
	var err error
	on(qn.t, qn.net.nodes[qn.leaderOf(g)], g, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte(data)}) })
	if err != nil {
		qn.t.Fatalf("group %d: propose: %v", g, err)
	}
}

func (qn *quiesceNodes) applied(node, g uint64) []string {
	var out []string
	on(qn.t, qn.net.nodes[node], g, func(*Replica) { out = slices.Clone(qn.sms[[2]uint64{node, g}].applied) })
	return out
}

// TestSchedulerQuiescesIdleGroups: groups whose followers hold the whole
// committed log stop ticking on every node, and the ticks that follow send
// nothing; a proposal wakes its group, commits on every node and the group
// quiesces again. A quiesced group whose leader is cut off does not elect
// while the leader's node is alive, and elects among the others once it is
// declared dead.
func TestSchedulerQuiescesIdleGroups(t *testing.T) {
	const groups = 6
	qn := startQuiescedGroups(t, groups)
	before := qn.net.deliveries.Load()
	for range 30 {
		qn.tick(1, 2, 3)
	}
	if sent := qn.net.deliveries.Load() - before; sent != 0 {
		t.Fatalf("%d messages over 30 ticks of quiesced groups, want none", sent)
	}

	qn.propose(1, "w")
	qn.net.settle(t)
	qn.tick(1, 2, 3)
	for node := uint64(1); node <= 3; node++ {
		if got := qn.applied(node, 1); !slices.Equal(got, []string{"v@3", "w@4"}) {
			t.Fatalf("node %d applied %v in the woken group", node, got)
		}
	}
	for range 3 {
		qn.tick(1, 2, 3) // the followers quiesce at the leader's next run
	}
	if !qn.quiesced(groups) {
		t.Fatalf("the woken group did not quiesce again: %d %d %d", qn.net.nodes[1].Quiesced(), qn.net.nodes[2].Quiesced(), qn.net.nodes[3].Quiesced())
	}

	// Cut node 1 off; group 3 is led there.
	const cut = 1
	if qn.leaderOf(3) != cut {
		t.Fatal("group 3 is not led by node 1")
	}
	qn.net.drop = func(m *raftpb.Message) bool { return m.GetTo() == cut || m.GetFrom() == cut }
	leaderSeen := func() (uint64, uint64) {
		var on2, on3 uint64
		on(t, qn.net.nodes[2], 3, func(r *Replica) { on2 = r.Status().Lead })
		on(t, qn.net.nodes[3], 3, func(r *Replica) { on3 = r.Status().Lead })
		return on2, on3
	}
	for range 60 {
		qn.tick(2, 3)
	}
	if l2, l3 := leaderSeen(); l2 != cut || l3 != cut {
		t.Fatalf("with node 1 alive, group 3 followed %d and %d, want 1 still", l2, l3)
	}
	qn.alive[cut].Store(false)
	for range 60 {
		qn.tick(2, 3)
	}
	l2, l3 := leaderSeen()
	if l2 == cut || l2 == 0 || l2 != l3 {
		t.Fatalf("after node 1 was declared dead, group 3 followed %d and %d, want the same new leader", l2, l3)
	}
}

// TestSchedulerQuiescenceSurvivesLossAndCuts: seeded message loss and
// nodes cut off (and declared dead) now and then, with proposals on the
// current leaders, never leave a group stuck quiesced: once the network
// heals, every group agrees on a leader, commits a last proposal on every
// node, and quiesces again.
func TestSchedulerQuiescenceSurvivesLossAndCuts(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { quiescenceUnderFaults(t, seed) })
	}
}

func quiescenceUnderFaults(t *testing.T, seed int64) {
	const groups = 6
	qn := startQuiesceNodes(t, groups)
	// The test's choices come from rng; the losses from loss, drawn on
	// the senders' workers in whatever order they run.
	rng, loss := rand.New(rand.NewPCG(uint64(seed), 0)), rand.New(rand.NewPCG(uint64(seed), 1))
	var mu sync.Mutex // guards loss, lossPercent and cut: the drop function runs on every sender's worker
	lossPercent, cut := 0, uint64(0)
	qn.net.drop = func(m *raftpb.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		return m.GetTo() == cut || m.GetFrom() == cut || loss.IntN(100) < lossPercent
	}
	for g := uint64(1); g <= groups; g++ {
		on(t, qn.net.nodes[qn.leaderOf(g)], g, func(r *Replica) { _ = r.Campaign() })
	}
	for round := range 400 {
		mu.Lock()
		switch rng.IntN(20) {
		case 0:
			lossPercent = []int{0, 10, 30}[rng.IntN(3)]
		case 1:
			if cut == 0 {
				cut = 1 + rng.Uint64N(3)
				qn.alive[cut].Store(false)
			} else {
				qn.alive[cut].Store(true)
				cut = 0
			}
		}
		mu.Unlock()
		if round%5 == 0 {
			g := 1 + rng.Uint64N(groups)
			for node := uint64(1); node <= 3; node++ {
				on(t, qn.net.nodes[node], g, func(r *Replica) { _, _ = r.Propose(Proposal{Data: []byte("p")}) })
			}
		}
		qn.tick(1, 2, 3)
	}
	mu.Lock()
	lossPercent = 0
	if cut != 0 {
		qn.alive[cut].Store(true)
		cut = 0
	}
	mu.Unlock()
	for g := uint64(1); g <= groups; g++ {
		lead := qn.awaitLeader(g)
		want := fmt.Sprintf("last-%d", g)
		var err error
		on(t, qn.net.nodes[lead], g, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte(want)}) })
		if err != nil {
			t.Fatalf("group %d: propose on leader %d: %v", g, lead, err)
		}
		for node := uint64(1); node <= 3; node++ {
			for i := 0; !slices.ContainsFunc(qn.applied(node, g), func(s string) bool { return strings.HasPrefix(s, want+"@") }); i++ {
				if i == 100 {
					t.Fatalf("group %d: node %d never applied %s: %v", g, node, want, qn.applied(node, g))
				}
				qn.tick(1, 2, 3)
			}
		}
	}
	for i := 0; !qn.quiesced(groups); i++ {
		if i == 100 {
			t.Fatalf("healed groups not quiesced: %d %d %d", qn.net.nodes[1].Quiesced(), qn.net.nodes[2].Quiesced(), qn.net.nodes[3].Quiesced())
		}
		qn.tick(1, 2, 3)
	}
}

// awaitLeader ticks until every node names the same leader of g, and
// returns it.
func (qn *quiesceNodes) awaitLeader(g uint64) uint64 {
	qn.t.Helper()
	for range 200 {
		var leads []uint64
		for node := uint64(1); node <= 3; node++ {
			on(qn.t, qn.net.nodes[node], g, func(r *Replica) {
				if l := r.Leadership(); l.Ready || l.Leader != node {
					leads = append(leads, l.Leader)
				}
			})
		}
		if len(leads) == 3 && leads[0] != 0 && leads[0] == leads[1] && leads[1] == leads[2] {
			return leads[0]
		}
		qn.tick(1, 2, 3)
	}
	qn.t.Fatalf("group %d: no leader every node agrees on", g)
	return 0
}
