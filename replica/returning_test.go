package replica_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/replica"
)

// The tests of a replica moved away and back. Under its old replica id
// the recreated, empty replica broke Raft's safety in both (two leaders in
// one term, two entries committed at one index): it is a voter of the
// bootstrap configuration with no memory of its votes and log. A move
// back now places a new replica id (meta/ids.go: the partition's next
// placement), and a replica refuses messages to another id (Step), so the
// old id is never answered again; these tests run the move back as
// the cluster now does: the old id gone, the new one empty.

// TestReturningReplicasKeepSafety moves two of a group's first replicas
// away and back (issue 13). A move back creates each one empty from the
// group's bootstrap snapshot (index 1, term 1, voters = the group's first
// replicas: meta.BootstrapVoters), as cluster.startReplica does when
// BeginReassignment applies, before the leader adds it as a learner. Under
// their old ids they were a quorum of that configuration with nothing
// promised; under new ids they are not in it, and never elect a leader or
// commit an entry the group's log does not hold.
func TestReturningReplicasKeepSafety(t *testing.T) {
	w := newWorld(t, worldConfig{seed: 5, voters: []uint64{1, 2, 3}, syncDelayMs: 2})
	if err := w.c.Do(1, func(r *replica.Replica) error { return r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	w.run(50)
	for _, v := range []string{"a", "b"} {
		if _, err := w.propose(1, v); err != nil {
			t.Fatal(err)
		}
	}
	if !w.runUntil(w.settled, 2000) {
		t.Fatalf("first proposals did not settle:\n%s", w.state())
	}

	// Move 1 and 2 away to 4 and 5: learners, catch-up, then one joint
	// change, with the leadership handed to 3 which stays.
	for _, id := range []uint64{4, 5} {
		if err := w.c.AddNode(id, replica.NewMemStorage()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.confChange(1, "l4 l5", false); err != nil {
		t.Fatal(err)
	}
	w.run(100)
	if err := w.compact(1); err != nil { // a learner takes a snapshot naming it
		t.Fatal(err)
	}
	if !w.runUntil(func() bool { return w.machines[4].applied >= 4 && w.machines[5].applied >= 4 }, 3000) {
		t.Fatalf("learners did not catch up:\n%s", w.state())
	}
	if err := w.c.Do(1, func(r *replica.Replica) error { r.TransferLeader(3); return nil }); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool { l, ok := w.c.Leader(); return ok && l == 3 }, 3000) {
		t.Fatalf("no transfer to 3:\n%s", w.state())
	}
	if err := w.confChange(3, "v4 v5 r1 r2", false); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool {
		cs := w.c.Node(3).Replica.ConfState()
		return len(cs.GetVotersOutgoing()) == 0 && len(cs.GetVoters()) == 3 && !slices.Contains(cs.GetVoters(), 1)
	}, 3000) {
		t.Fatalf("the move away did not complete:\n%s", w.state())
	}
	for _, v := range []string{"c", "d"} {
		if _, err := w.propose(3, v); err != nil {
			t.Fatal(err)
		}
	}
	if !w.runUntil(w.settled, 2000) {
		t.Fatalf("proposals after the move did not settle:\n%s", w.state())
	}

	// The move away removed 1's and 2's directories; the move back
	// creates replicas 11 and 12 on their nodes from the bootstrap
	// snapshot, and 1 and 2 are never run again.
	for _, id := range []uint64{1, 2} {
		w.c.Crash(id)
		if err := w.c.AddNode(id+10, replica.NewBootstrapStorage([]uint64{1, 2, 3})); err != nil {
			t.Fatal(err)
		}
	}
	w.run(5000)
	for _, id := range []uint64{11, 12} {
		if l := w.c.Node(id).Replica.Leadership(); l.Leader == id {
			t.Errorf("returning replica %d leads term %d of the bootstrap configuration", id, l.Term)
		}
	}
	if v := w.check(); len(v) > 0 {
		t.Errorf("properties violated:\n%s", strings.Join(v, "\n"))
	}
	t.Logf("state:\n%s", w.state())
}

// TestReturningReplicaRefusesStaleVoter moves replica 1 away while 2 is
// cut off, so 2 never applies 1's removal, then moves 1 back (issue 13).
// Recreated under its old id with no term, vote or log, it granted 2 a
// vote that 1's earlier incarnation, holding the entries the group
// committed since, would have refused. Under a new id (11) it is not a
// voter 2 counts, and 2's requests to 1 reach nobody: 2 never leads a
// configuration the group has left, nor commits over its log.
func TestReturningReplicaRefusesStaleVoter(t *testing.T) {
	w := newWorld(t, worldConfig{seed: 7, voters: []uint64{1, 2, 3}, syncDelayMs: 2})
	if err := w.c.Do(1, func(r *replica.Replica) error { return r.Campaign() }); err != nil {
		t.Fatal(err)
	}
	w.run(50)
	for _, v := range []string{"a", "b"} {
		if _, err := w.propose(1, v); err != nil {
			t.Fatal(err)
		}
	}
	if !w.runUntil(w.settled, 2000) {
		t.Fatalf("first proposals did not settle:\n%s", w.state())
	}

	w.c.Net.Split([]uint64{2}, []uint64{1, 3, 4})
	if err := w.c.AddNode(4, replica.NewMemStorage()); err != nil {
		t.Fatal(err)
	}
	if err := w.confChange(1, "l4", false); err != nil {
		t.Fatal(err)
	}
	w.run(100)
	if err := w.compact(1); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool { return w.machines[4].applied >= 4 }, 3000) {
		t.Fatalf("learner did not catch up:\n%s", w.state())
	}
	if err := w.c.Do(1, func(r *replica.Replica) error { r.TransferLeader(3); return nil }); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool { l, ok := w.c.Leader(); return ok && l == 3 }, 3000) {
		t.Fatalf("no transfer to 3:\n%s", w.state())
	}
	if err := w.confChange(3, "v4 r1", false); err != nil {
		t.Fatal(err)
	}
	if !w.runUntil(func() bool {
		cs := w.c.Node(3).Replica.ConfState()
		return len(cs.GetVotersOutgoing()) == 0 && !slices.Contains(cs.GetVoters(), 1)
	}, 3000) {
		t.Fatalf("the move away did not complete:\n%s", w.state())
	}
	for _, v := range []string{"c", "d"} {
		if _, err := w.propose(3, v); err != nil {
			t.Fatal(err)
		}
	}
	if !w.runUntil(w.settled, 2000) {
		t.Fatalf("proposals after the move did not settle:\n%s", w.state())
	}
	if cs := w.c.Node(2).Replica.ConfState(); !slices.Contains(cs.GetVoters(), 1) {
		t.Fatalf("2 applied 1's removal; the scenario needs it stale: %v", cs)
	}

	// The move back creates 11 empty on 1's node; 2, still stale, reaches
	// that node but not the group.
	w.c.Crash(1)
	if err := w.c.AddNode(11, replica.NewBootstrapStorage([]uint64{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	w.c.Net.Heal()
	w.c.Net.Split([]uint64{1, 11, 2}, []uint64{3, 4})
	w.run(5000)
	for _, id := range []uint64{11, 2} {
		if l := w.c.Node(id).Replica.Leadership(); l.Leader == id {
			t.Errorf("replica %d leads term %d of a configuration the group left", id, l.Term)
		}
	}
	if v := w.check(); len(v) > 0 {
		t.Errorf("properties violated:\n%s", strings.Join(v, "\n"))
	}
	t.Logf("state:\n%s", w.state())
}
