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

// TestClusterLeaderGoneElectsAtOnce: when a partition's leader node closes
// (its listener and connections gone, as when its process dies), the
// survivors find it gone and elect a new leader in far fewer ticks than
// the election timeout, in one election (the term goes up by one: no
// split vote); the metadata group fails over the same way when it was
// led there. Every acknowledged record is on the new leader.
func TestClusterLeaderGoneElectsAtOnce(t *testing.T) {
	tn := startNodesOf(&testNodes{t: t, edit: func(c *Config) { c.RaftElectionTicks = goneElectionTicks }}, 3)
	via := tn.controller()
	if _, err := tn.nodes[via].CreateTopicReplicated("events", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
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
		for id := range ticks {
			l, err := tn.nodes[id].Leader("events", 0)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := tn.nodes[id].sched.Ticks() - ticks[id]
			t.Logf("round %d: node %d sees node %d lead at epoch %d, %d ticks after node %d closed", round, id, next, l.Epoch, elapsed, lead)
			if elapsed >= goneElectionTicks/2 {
				t.Errorf("round %d: node %d took %d ticks to elect, the election timeout is %d", round, id, elapsed, goneElectionTicks)
			}
			if l.Epoch != before.Epoch+1 {
				t.Errorf("round %d: node %d sees epoch %d, want %d (one election)", round, id, l.Epoch, before.Epoch+1)
			}
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
}
