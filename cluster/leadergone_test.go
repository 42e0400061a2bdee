package cluster

import (
	"testing"
)

// goneElectionTicks is the election timeout of TestClusterLeaderGone: 50
// ticks of 10 ms. A follower that waits for it elects at least 48 ticks
// after the leader's last heartbeat (sent every 2 ticks), and an idle
// partition's quiesced followers only start waiting once the leader
// table declares the node dead (3 s).
const goneElectionTicks = 50

// goneRounds is how many leader closes TestClusterLeaderGoneElectsAtOnce
// makes.
const goneRounds = 3

// TestClusterLeaderGoneElectsAtOnce: when a partition's leader node closes
// (its listener and connections gone, as when its process dies), the
// survivors find it gone and elect a new leader in far fewer ticks than
// the election timeout, in one election (the term goes up by one: no
// split vote); the metadata group fails over the same way when it was
// led there. Every acknowledged record is on the new leader. The finding
// is a race with the closing node on a loaded machine (a survivor's probe
// may still be accepted while the node closes), after which the election
// timeout elects as before: of goneRounds closes at least one must take
// the fast path (without it every one takes 75–87 ticks), and a round that
// missed it is logged.
func TestClusterLeaderGoneElectsAtOnce(t *testing.T) {
	tn := startNodesOf(&testNodes{t: t, edit: func(c *Config) { c.RaftElectionTicks = goneElectionTicks }}, 3)
	via := tn.controller()
	if _, err := tn.nodes[via].CreateTopicReplicated("events", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	fast := 0
	for round := range goneRounds {
		lead := tn.leader("events", 0)
		value := string(rune('a' + round))
		appendAll(t, tn.nodes[lead], "events", 0, value)
		before, err := tn.nodes[lead].Leader("events", 0)
		if err != nil {
			t.Fatal(err)
		}
		ticks := map[int32]uint64{}
		for id, c := range tn.nodes {
			if id != lead {
				ticks[id] = c.sched.Ticks()
			}
		}
		tn.stop(lead)
		next := tn.leader("events", 0)
		roundFast, epochs := true, map[int32]int32{}
		for id := range ticks {
			l, err := tn.nodes[id].Leader("events", 0)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := tn.nodes[id].sched.Ticks() - ticks[id]
			t.Logf("round %d: node %d sees node %d lead at epoch %d, %d ticks after node %d closed", round, id, next, l.Epoch, elapsed, lead)
			roundFast = roundFast && elapsed < goneElectionTicks/2
			epochs[id] = l.Epoch
		}
		if roundFast {
			fast++
			for id, epoch := range epochs {
				if epoch != before.Epoch+1 {
					t.Errorf("round %d: node %d sees epoch %d, want %d (one election)", round, id, epoch, before.Epoch+1)
				}
			}
		} else {
			t.Logf("round %d: the survivors elected after the election timeout (%d ticks), not at once", round, goneElectionTicks)
		}
		p, err := tn.nodes[next].Partition("events", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := records(t, p); len(got) < round+1 {
			t.Fatalf("round %d: the new leader holds %v", round, got)
		}
		tn.restart(lead)
	}
	if fast == 0 {
		t.Errorf("in none of %d closes did the survivors elect at once (in under %d ticks)", goneRounds, goneElectionTicks/2)
	}
}
