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

// TestRenewReplacesADamagedReplicaOnItsNode renews node 2's replica of a
// partition (its copy damaged): the target keeps node 2 under a new
// placement, the other replicas as they are, and once complete the group
// never holds the damaged id again; a preferred leader passes to the
// successor. Asked again after it applied, for a replica the partition
// does not have, or with a target leaving the node out, the renewal is
// refused, and a running one cannot be cancelled.
func TestRenewReplacesADamagedReplicaOnItsNode(t *testing.T) {
	m := fixture(t)
	next := m.AppliedIndex() + 1
	apply := func(c *metav1.Command) *metav1.Result {
		t.Helper()
		res := m.Apply(next, c)
		next++
		return res
	}
	renew := func(target []uint64, renewed ...uint64) *metav1.Command {
		c := begin(ref("orders", 0), target...)
		c.GetBeginReassignment().RenewReplicas = renewed
		return c
	}
	at := func() *metav1.Partition { return topicOf(t, m, "orders").Partitions[0] }
	before := slices.Clone(at().Replicas)
	damaged := before[1]
	if err := ResultError(apply(renew(before, damaged+1))); err == nil || !strings.Contains(err.Error(), "no replica") {
		t.Fatalf("renewing a replica the partition does not have: %v", err)
	}
	without := slices.DeleteFunc(slices.Clone(before), func(r uint64) bool { return r == damaged })
	if err := ResultError(apply(renew(without, damaged))); err == nil || !strings.Contains(err.Error(), "leaves out") {
		t.Fatalf("renewing a replica whose node the target leaves out: %v", err)
	}
	preferred := &metav1.Command{Command: &metav1.Command_SetPreferredLeaders{SetPreferredLeaders: &metav1.SetPreferredLeaders{
		Leaders: []*metav1.PreferredLeader{{Partition: ref("orders", 0), Replica: damaged}}}}}
	if err := ResultError(apply(preferred)); err != nil {
		t.Fatal(err)
	}
	if err := ResultError(apply(renew(before, damaged))); err != nil {
		t.Fatal(err)
	}
	cancel := &metav1.Command{Command: &metav1.Command_CancelReassignment{CancelReassignment: &metav1.CancelReassignment{
		Partition: ref("orders", 0), ReassignmentId: at().ReassignmentId}}}
	if err := ResultError(apply(cancel)); err == nil || !strings.Contains(err.Error(), "cannot be cancelled") {
		t.Fatalf("cancelling a renewal: %v", err)
	}
	target := at().TargetReplicas
	for i, r := range target {
		switch {
		case before[i] == damaged:
			if NodeOf(r) != NodeOf(damaged) || IncarnationOf(r) != IncarnationOf(damaged) || PlacementOf(r) <= PlacementOf(damaged) {
				t.Errorf("the renewed replica %#x became %#x: want node %d's incarnation at a new placement", damaged, r, NodeOf(damaged))
			}
		case r != before[i]:
			t.Errorf("kept replica %#x became %#x", before[i], r)
		}
	}
	if res := apply(complete(ref("orders", 0), at().ReassignmentId)); ResultError(res) != nil {
		t.Fatal(ResultError(res))
	}
	if slices.Contains(at().Replicas, damaged) || !slices.Equal(at().Replicas, target) {
		t.Fatalf("after the renewal the replicas are %#x, want %#x", at().Replicas, target)
	}
	if p := at().PreferredLeader; NodeReplicaID(p) != NodeReplicaID(damaged) || p == damaged {
		t.Fatalf("the preferred leader %#x was the renewed replica; it is now %#x, want its successor", damaged, p)
	}
	if err := ResultError(apply(renew(at().Replicas, damaged))); err == nil || !strings.Contains(err.Error(), "no replica") {
		t.Fatalf("the same renewal asked again after it applied: %v", err)
	}
	if err := CheckState(m.State()); err != nil {
		t.Fatal(err)
	}
}

// TestStaleRenewalMayBeCancelled: a renewal onto a node that then
// registers again (wiped: a new incarnation) can never finish; it becomes
// stale and may be cancelled, so the refill of the new incarnation can
// take the partition.
func TestStaleRenewalMayBeCancelled(t *testing.T) {
	m := fixture(t)
	next := m.AppliedIndex() + 1
	apply := func(c *metav1.Command) error {
		t.Helper()
		res := m.Apply(next, c)
		next++
		return ResultError(res)
	}
	at := func() *metav1.Partition { return topicOf(t, m, "orders").Partitions[0] }
	damaged := at().Replicas[1]
	c := begin(ref("orders", 0), at().Replicas...)
	c.GetBeginReassignment().RenewReplicas = []uint64{damaged}
	if err := apply(c); err != nil {
		t.Fatal(err)
	}
	cancel := &metav1.Command{Command: &metav1.Command_CancelReassignment{CancelReassignment: &metav1.CancelReassignment{
		Partition: ref("orders", 0), ReassignmentId: at().ReassignmentId}}}
	if StaleRenewal(m.State(), at()) {
		t.Fatal("a renewal onto a current incarnation is stale")
	}
	if err := apply(register(NodeOf(damaged), 0, "node-again:9093")); err != nil {
		t.Fatal(err)
	}
	if !StaleRenewal(m.State(), at()) {
		t.Fatalf("the renewal onto node %d's old incarnation is not stale after it registered again", NodeOf(damaged))
	}
	if err := apply(cancel); err != nil {
		t.Fatalf("cancelling the stale renewal: %v", err)
	}
	if at().ReassignmentId != 0 || !slices.Contains(at().Replicas, damaged) {
		t.Fatalf("after the cancel: reassignment %d, replicas %#x", at().ReassignmentId, at().Replicas)
	}
}
