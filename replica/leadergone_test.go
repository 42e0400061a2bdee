package replica_test

import (
	"testing"

	"github.com/cairnlog/cairn/replica"
)

// The simulated groups below run with the default config: 50 ms ticks,
// an election timeout of 12 ticks (600 ms, randomised up to 1.2 s).
const (
	goneTickMs          = 50
	goneElectionTimeout = 12 * goneTickMs
)

// electedWorld is a group of three whose node 1 leads, with one value
// committed everywhere.
func electedWorld(t *testing.T, seed uint64) *world {
	t.Helper()
	w := newWorld(t, worldConfig{seed: seed, voters: []uint64{1, 2, 3}})
	if err := w.c.Do(1, func(r *replica.Replica) error { return r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool { l, ok := w.c.Leader(); return ok && l == 1 }, 5000) {
		t.Fatalf("no leader:\n%s", w.state())
	}
	if _, err := w.propose(1, "a"); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool {
		return w.machines[2].applied == w.machines[1].applied && w.machines[3].applied == w.machines[1].applied
	}, 5000) {
		t.Fatalf("not applied everywhere:\n%s", w.state())
	}
	return w
}

func goneNode(dead uint64) func(uint64) bool { return func(id uint64) bool { return id == dead } }

// reportGone tells node its leader's process is gone, as the cluster does
// when its transport sees the leader's node refuse a dial.
func reportGone(t *testing.T, w *world, node, dead uint64) {
	t.Helper()
	if err := w.c.Do(node, func(r *replica.Replica) error { r.LeaderGone(goneNode(dead)); return nil }); err != nil {
		t.Fatal(err)
	}
}

// newLeaderWithin runs until a node other than old is the ready leader,
// for at most maxMs of virtual time, and returns it and the time taken.
func newLeaderWithin(t *testing.T, w *world, old uint64, maxMs int64) (uint64, int64) {
	t.Helper()
	start := w.c.NowMs
	var leader uint64
	ok := w.runUntil(func() bool {
		l, ok := w.c.Leader()
		leader = l
		return ok && l != old
	}, maxMs)
	if !ok {
		t.Fatalf("no new leader within %d ms:\n%s", maxMs, w.state())
	}
	return leader, w.c.NowMs - start
}

// TestLeaderGoneElectsAtOnce: after the leader's node crashes and both
// survivors learn it is gone, the lowest survivor is the ready leader
// within two ticks, where the election timeout alone takes at least 12.
func TestLeaderGoneElectsAtOnce(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		w := electedWorld(t, seed)
		w.c.Crash(1)
		reportGone(t, w, 3, 1)
		reportGone(t, w, 2, 1)
		leader, ms := newLeaderWithin(t, w, 1, 2*goneTickMs)
		if leader != 2 {
			t.Fatalf("seed %d: leader %d, want 2 (the lowest survivor):\n%s", seed, leader, w.state())
		}
		t.Logf("seed %d: node 2 leads %d ms after the report (election timeout %d ms)", seed, ms, goneElectionTimeout)
		if v := w.check(); len(v) > 0 {
			t.Fatalf("seed %d: %v", seed, v)
		}
	}
}

// TestLeaderGoneCampaignRetries: the campaigner learns of the loss first
// and its pre-vote reaches a survivor still in the leader's lease, which
// ignores it; once that survivor learns of the loss too, the campaigner's
// pre-vote at the next tick wins, long before the election timeout.
func TestLeaderGoneCampaignRetries(t *testing.T) {
	w := electedWorld(t, 7)
	w.c.Crash(1)
	reportGone(t, w, 2, 1)
	w.run(goneTickMs / 2) // the first pre-vote is delivered and ignored
	if _, ok := w.c.Leader(); ok {
		t.Fatalf("a leader while node 3 is in the lease:\n%s", w.state())
	}
	reportGone(t, w, 3, 1)
	leader, ms := newLeaderWithin(t, w, 1, 2*goneTickMs)
	if leader != 2 {
		t.Fatalf("leader %d, want 2:\n%s", leader, w.state())
	}
	t.Logf("node 2 leads %d ms after node 3's report", ms)
}

// TestLeaderGoneFalseReportKeepsLeader: a report naming a leader that is
// in fact alive (a flapping connection) does not depose it: the other
// follower, in the lease, and the leader ignore the campaigner, and the
// leader's next heartbeat brings the follower back, in the same term.
func TestLeaderGoneFalseReportKeepsLeader(t *testing.T) {
	w := electedWorld(t, 11)
	before := w.c.Node(1).Replica.Leadership()
	reportGone(t, w, 2, 1)
	w.run(5 * goneElectionTimeout)
	for _, id := range []uint64{1, 2, 3} {
		if l := w.c.Node(id).Replica.Leadership(); l.Leader != 1 || l.Term != before.Term {
			t.Fatalf("node %d sees leader %d in term %d, want 1 in term %d:\n%s", id, l.Leader, l.Term, before.Term, w.state())
		}
	}
	if _, err := w.propose(1, "b"); err != nil {
		t.Fatalf("the leader no longer proposes: %v", err)
	}
}
