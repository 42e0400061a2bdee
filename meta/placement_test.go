package meta

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// clusterOf is a machine with active brokers 1..n and, after them, one
// broker in each other state, which placement must never use.
func clusterOf(t *testing.T, n int) *Machine {
	t.Helper()
	var brokers []*metav1.Broker
	for i := 1; i <= n; i++ {
		brokers = append(brokers, &metav1.Broker{NodeId: int32(i)})
	}
	st, err := Bootstrap("cluster-p", brokers, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(st)
	if err != nil {
		t.Fatal(err)
	}
	next := int32(n + 1)
	for _, s := range []metav1.BrokerState{joining, draining, removed} {
		applyNext(t, m, register(next, 0, "x:1"))
		if s == draining {
			applyNext(t, m, brokerState(next, 1, active))
		}
		if s != joining {
			applyNext(t, m, brokerState(next, 1, s))
		}
		next++
	}
	return m
}

func applyNext(t *testing.T, m *Machine, c *metav1.Command) *metav1.Result {
	t.Helper()
	return mustApply(t, m, m.AppliedIndex()+1, c)
}

// createPlaced places and creates a topic, which the machine must accept.
func createPlaced(t *testing.T, m *Machine, name string, partitions, rf int32) []*metav1.ReplicaSet {
	t.Helper()
	placed, err := Place(m.state, name, 0, partitions, rf)
	if err != nil {
		t.Fatalf("place %s: %v", name, err)
	}
	again, _ := Place(m.State(), name, 0, partitions, rf)
	for i := range placed {
		if !proto.Equal(placed[i], again[i]) {
			t.Fatalf("place %s twice: %v then %v", name, placed[i], again[i])
		}
	}
	id := make([]byte, 16)
	copy(id, name)
	id[15] = 1
	c := &metav1.Command{Command: &metav1.Command_CreateTopic{CreateTopic: &metav1.CreateTopic{Name: name, Id: id, Partitions: placed}}}
	applyNext(t, m, c)
	return placed
}

// spread is the difference between the most and least loaded active broker.
func spread(st *metav1.State, counts map[int32]int) int {
	lo, hi := -1, 0
	for _, b := range activeBrokers(st) {
		n := counts[b.NodeId]
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - lo
}

// TestPlacementProperties: over many cluster and topic shapes, topics
// created one after the other with Place are accepted by the machine
// (replica sets of the right size, on distinct active brokers), placing
// twice gives the same sets, preferred leaders stay within one partition
// of each other over the active brokers and replica counts within two.
func TestPlacementProperties(t *testing.T) {
	for seed := uint64(0); seed < 150; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		n := 1 + rng.IntN(9)
		rf := int32(rng.IntN(min(n, 5) + 1)) // 0: the default
		want := rf
		if rf < 1 {
			want = int32(min(3, n))
		}
		m := clusterOf(t, n)
		for i := 0; i < 25; i++ {
			name := fmt.Sprintf("topic-%d", i)
			for _, s := range createPlaced(t, m, name, int32(1+rng.IntN(20)), rf) {
				if int32(len(s.Replicas)) != want {
					t.Fatalf("seed %d, %s: %d replicas, want %d", seed, name, len(s.Replicas), want)
				}
			}
			l := countLoads(m.state)
			if d := spread(m.state, l.leaders); d > 1 {
				t.Fatalf("seed %d (%d brokers, rf %d), after %s preferred leaders spread by %d: %v", seed, n, rf, name, d, l.leaders)
			}
			if d := spread(m.state, l.replicas); d > 2 {
				t.Fatalf("seed %d (%d brokers, rf %d), after %s replicas spread by %d: %v", seed, n, rf, name, d, l.replicas)
			}
		}
	}
}

// TestPlacementRotation: equal loads are broken by the topic's hash and the
// partition, so single-partition topics do not all start on one broker.
func TestPlacementRotation(t *testing.T) {
	st := clusterOf(t, 3).State()
	first := map[int32]int{}
	for i := 0; i < 30; i++ {
		sets, err := Place(st, fmt.Sprintf("t%d", i), 0, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		first[NodeOf(sets[0].Replicas[0])]++
	}
	if len(first) != 3 {
		t.Fatalf("first replicas of 30 topics on an empty cluster: %v", first)
	}
}

// TestPlacementPrefersTheLeastLoaded: a broker that joins a loaded cluster
// takes new replicas first, and the sets of a topic's new partitions
// (CreatePartitions) account for the partitions placed before them.
func TestPlacementPrefersTheLeastLoaded(t *testing.T) {
	m := clusterOf(t, 3)
	createPlaced(t, m, "old", 12, 2)
	applyNext(t, m, brokerState(4, 1, active)) // the joining broker of clusterOf
	sets, err := Place(m.state, "new", 0, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if !onNode(s.Replicas, 4) {
			t.Fatalf("new partitions %v: node 4, empty, not in every set", sets)
		}
	}
}

// TestPlacementRefusals: partitions past a topic's bound are
// ErrInvalidPartitions; a replication factor above the active brokers, or
// a cluster with none, is ErrReplicationFactor.
func TestPlacementRefusals(t *testing.T) {
	st := clusterOf(t, 2).State()
	if _, err := Place(st, "t", PartitionsPerTopicMax-1, 2, 1); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("partitions past the bound: %v", err)
	}
	if _, err := Place(st, "t", 0, 1, 3); !errors.Is(err, ErrReplicationFactor) {
		t.Fatalf("rf 3 on 2 brokers: %v", err)
	}
	for _, b := range st.Brokers {
		b.State = draining
	}
	if _, err := Place(st, "t", 0, 1, -1); !errors.Is(err, ErrReplicationFactor) {
		t.Fatalf("no active broker: %v", err)
	}
}

// TestPlanRemoveNode: the plan takes every replica off the node, keeps the
// other replicas first and in order, adds one replica of an active broker,
// and carried out through the machine it lets the node be removed with the
// load still spread to within one partition.
func TestPlanRemoveNode(t *testing.T) {
	m := clusterOf(t, 5)
	createPlaced(t, m, "a", 10, 3)
	createPlaced(t, m, "b", 7, 2)
	applyNext(t, m, brokerState(2, 1, draining))
	moves, err := PlanRemoveNode(m.state, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != len(m.PartitionsOfNode(2)) {
		t.Fatalf("%d moves for %d partitions on node 2", len(moves), len(m.PartitionsOfNode(2)))
	}
	for _, mv := range moves {
		kept := slices.DeleteFunc(slices.Clone(mv.Replicas), func(r uint64) bool { return NodeOf(r) == 2 })
		if onNode(mv.Target, 2) || len(mv.Target) != len(mv.Replicas) || !slices.Equal(mv.Target[:len(kept)], kept) {
			t.Fatalf("move %v → %v", mv.Replicas, mv.Target)
		}
		id := applyNext(t, m, begin(mv.Partition, mv.Target...)).ReassignmentId
		applyNext(t, m, complete(mv.Partition, id))
	}
	applyNext(t, m, brokerState(2, 1, removed))
	if d := spread(m.state, countLoads(m.state).replicas); d > 1 {
		t.Fatalf("replicas spread by %d after the removal: %v", d, countLoads(m.state).replicas)
	}

	if _, err := PlanRemoveNode(m.state, 1); err != nil {
		t.Fatal(err)
	}
	single := clusterOf(t, 1)
	createPlaced(t, single, "a", 1, 1)
	if _, err := PlanRemoveNode(single.state, 1); !errors.Is(err, ErrReplicationFactor) {
		t.Fatalf("removing the only active broker: %v", err)
	}
	small := clusterOf(t, 3)
	createPlaced(t, small, "a", 2, 3)
	if _, err := PlanRemoveNode(small.state, 1); !errors.Is(err, ErrReplicationFactor) {
		t.Fatalf("rf 3 on 3 brokers, removing one: %v", err)
	}
	applyNext(t, small, begin(ref("a", 0), r1, r2))
	if _, err := PlanRemoveNode(small.state, 3); !errors.Is(err, ErrReassignmentInProgress) {
		t.Fatalf("a partition already moving: %v", err)
	}
}

// TestPlanPreferredLeaders: preferences all on one node spread to within
// one partition per active broker, a preference on a draining broker moves
// to an active one, and a balanced state plans nothing.
func TestPlanPreferredLeaders(t *testing.T) {
	m := clusterOf(t, 3)
	var parts [][]uint64
	for i := 0; i < 9; i++ {
		parts = append(parts, []uint64{r1, r2, r3})
	}
	applyNext(t, m, createTopic("skewed", topicID(7), nil, parts...))
	plan := PlanPreferredLeaders(m.state)
	if len(plan) != 6 {
		t.Fatalf("%d changes, want 6: %v", len(plan), plan)
	}
	applyNext(t, m, &metav1.Command{Command: &metav1.Command_SetPreferredLeaders{SetPreferredLeaders: &metav1.SetPreferredLeaders{Leaders: plan}}})
	if d := spread(m.state, countLoads(m.state).leaders); d != 0 {
		t.Fatalf("leaders spread by %d: %v", d, countLoads(m.state).leaders)
	}
	if again := PlanPreferredLeaders(m.state); len(again) != 0 {
		t.Fatalf("balanced, yet planned %v", again)
	}
	applyNext(t, m, brokerState(3, 1, draining))
	plan = PlanPreferredLeaders(m.state)
	for _, pl := range plan {
		if NodeOf(pl.Replica) == 3 {
			t.Fatalf("preference moved onto the draining node: %v", pl)
		}
	}
	applyNext(t, m, &metav1.Command{Command: &metav1.Command_SetPreferredLeaders{SetPreferredLeaders: &metav1.SetPreferredLeaders{Leaders: plan}}})
	if l := countLoads(m.state).leaders; l[3] != 0 || l[1] != 5 && l[1] != 4 {
		t.Fatalf("leaders with node 3 draining: %v", l)
	}
}

// TestPlanLeaderTransfers: groups led elsewhere than their preferred
// leader move back, unless the preferred broker is not active at that
// incarnation or the leader is unknown.
func TestPlanLeaderTransfers(t *testing.T) {
	m := fixture(t) // orders: groups 1-3 preferring r1, r2, r3; events: group 4 preferring r1
	leaders := map[uint64]uint64{1: r1, 2: r3, 3: r1, 4: r2}
	got := PlanLeaderTransfers(m.state, leaders)
	want := []Transfer{{GroupID: 4, From: r2, To: r1}, {GroupID: 2, From: r3, To: r2}, {GroupID: 3, From: r1, To: r3}}
	if !slices.Equal(got, want) {
		t.Fatalf("transfers %v, want %v", got, want)
	}
	applyNext(t, m, brokerState(3, 1, draining))
	delete(leaders, 4)
	if got := PlanLeaderTransfers(m.state, leaders); !slices.Equal(got, []Transfer{{GroupID: 2, From: r3, To: r2}}) {
		t.Fatalf("with node 3 draining and group 4's leader unknown: %v", got)
	}
}
