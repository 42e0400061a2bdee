package meta

import (
	"slices"
	"strings"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// TestMoveBackGivesNewReplicaID moves replicas off a node and back
// (issue 13). A replica's directory is removed when it moves off, so the
// one a move back opens has no term, vote or log: Raft would count it as
// the earlier member if it kept the id, so a move back must place a
// replica id the group never held (here: a new placement). Node 2's first
// replica of orders-2, a bootstrap voter, and node 4's replica of
// orders-0, added by a move, both return; a target naming a kept replica
// by its placement-0 id keeps that replica.
func TestMoveBackGivesNewReplicaID(t *testing.T) {
	m := fixture(t)
	next := m.AppliedIndex() + 1
	apply := func(c *metav1.Command) *metav1.Result {
		t.Helper()
		res := mustApply(t, m, next, c)
		next++
		return res
	}
	at := func(p int32) *metav1.Partition { return topicOf(t, m, "orders").Partitions[p] }
	held := map[int32][]uint64{} // partition → every replica id it has held
	note := func(p int32) {
		part := at(p)
		for _, r := range slices.Concat(BootstrapVoters(part), part.Replicas, part.TargetReplicas) {
			if !slices.Contains(held[p], r) {
				held[p] = append(held[p], r)
			}
		}
	}
	move := func(p int32, target ...uint64) {
		t.Helper()
		if at(p).ReassignmentId == 0 {
			apply(begin(ref("orders", p), target...))
		}
		note(p)
		apply(complete(ref("orders", p), at(p).ReassignmentId))
		note(p)
	}
	moveBack := func(p int32, back ...uint64) {
		t.Helper()
		before := slices.Clone(held[p])
		res := m.Apply(next, begin(ref("orders", p), back...))
		next++
		if ResultError(res) != nil {
			return // refusing the move back is sound too
		}
		part := at(p)
		for _, r := range part.TargetReplicas {
			if !slices.Contains(part.Replicas, r) && slices.Contains(before, r) {
				t.Errorf("orders-%d: the move back places %d, a replica id the group held (%v)", p, r, before)
			}
		}
	}
	apply(brokerState(4, 1, metav1.BrokerState_BROKER_STATE_ACTIVE))
	// orders-2 completes the fixture's move from 3,1,2 to 3,1, then its
	// first replica on node 2 returns.
	move(2)
	moveBack(2, r3, r1, r2)
	// orders-0: r4 joins by one move, leaves by another, and returns.
	move(0, r1, r2, r4)
	move(0, r1, r2, r3)
	moveBack(0, r1, r2, r4)
	// Kept replicas named by their node's id keep their placement.
	kept := slices.Clone(at(0).Replicas)
	if at(0).ReassignmentId != 0 {
		kept = slices.Clone(at(0).TargetReplicas)
		apply(complete(ref("orders", 0), at(0).ReassignmentId))
	}
	apply(begin(ref("orders", 0), r1, r2, r3))
	for _, r := range at(0).TargetReplicas {
		if NodeOf(r) == NodeOf(r4) {
			continue
		}
		if !slices.Contains(kept, r) && NodeOf(r) != 3 {
			t.Errorf("orders-0: kept node %d's replica became %#x (was one of %#x)", NodeOf(r), r, kept)
		}
	}
	if err := CheckState(m.State()); err != nil {
		t.Fatal(err)
	}
}

// A new topic's replicas cannot name a placement: placements are handed
// out by moves.
func TestCreateTopicRefusesPlacement(t *testing.T) {
	m := fixture(t)
	id := make([]byte, 16)
	id[0] = 9
	res := m.Apply(m.AppliedIndex()+1, createTopic("placed", id, nil, []uint64{WithPlacement(ReplicaID(1, 1), 3)}))
	if ResultError(res) == nil {
		t.Fatal("a replica with a placement was accepted")
	} else if !strings.Contains(ResultError(res).Error(), "placement") {
		t.Fatalf("refused for another reason: %v", ResultError(res))
	}
}
