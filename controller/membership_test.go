package controller

import (
	"slices"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
)

// Nodes added through any member join as learners, get the leader's
// snapshot, are promoted while the group has fewer than three voters and
// become ACTIVE brokers; a fourth stays a learner.
func TestJoinGrowsTheGroupToThreeVoters(t *testing.T) {
	cl := newCluster(t, 1, 1000)
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
