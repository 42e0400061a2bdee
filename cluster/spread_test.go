package cluster

import (
	"fmt"
	"slices"
	"testing"
)

// placed is three nodes holding n partitions of three replicas each,
// preferred leaders spread round-robin, as meta.Place spreads them.
func placed(n int) []PartitionReplicas {
	var parts []PartitionReplicas
	for i := range n {
		first := int32(i%3) + 1
		parts = append(parts, PartitionReplicas{Topic: "t", Partition: int32(i),
			Replicas: []int32{first, first%3 + 1, (first+1)%3 + 1}})
	}
	return parts
}

// PlanSpread gives a new node the floor of its share of the replicas,
// taken from the fullest nodes, one replica per partition, never a
// partition the node holds already, and leaves the replica count of every
// partition as it was.
func TestPlanSpread(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts []PartitionReplicas
		nodes []int32
		node  int32
		want  int // replicas node holds after the moves
		leads int // partitions node is the preferred leader of after
	}{
		{"three to four nodes", placed(12), []int32{1, 2, 3, 4}, 4, 9, 3},
		{"a single partition", placed(1), []int32{1, 2, 3, 4}, 4, 0, 0},
		{"odd count", placed(5), []int32{1, 2, 3, 4}, 4, 3, 1},
		{"three partitions of three", placed(3), []int32{1, 2, 3, 4}, 4, 2, 0},
		{"five nodes, one new", placed(10), []int32{1, 2, 3, 4, 9}, 9, 6, 2},
		{"node already holding its share", []PartitionReplicas{{"a", 0, []int32{1, 4}}, {"a", 1, []int32{2, 4}}, {"a", 2, []int32{1, 2}}}, []int32{1, 2, 4}, 4, 2, 0},
		{"node not active", placed(6), []int32{1, 2, 3}, 4, 0, 0},
		{"no partitions", nil, []int32{1, 2}, 2, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moves := PlanSpread(tc.parts, tc.nodes, tc.node)
			after := map[string][]int32{}
			for _, p := range tc.parts {
				after[fmt.Sprint(p.Topic, p.Partition)] = p.Replicas
			}
			seen := map[string]bool{}
			for _, m := range moves {
				key := fmt.Sprint(m.Topic, m.Partition)
				before, ok := after[key]
				switch {
				case !ok || seen[key]:
					t.Fatalf("move of %s: unknown or twice", key)
				case slices.Contains(before, tc.node) || !slices.Contains(m.Replicas, tc.node) || len(m.Replicas) != len(before):
					t.Fatalf("move of %s from %v to %v", key, before, m.Replicas)
				case len(minus(before, m.Replicas)) != 1:
					t.Fatalf("move of %s from %v to %v changes more than one replica", key, before, m.Replicas)
				}
				seen[key], after[key] = true, m.Replicas
			}
			held, leads := map[int32]int{}, 0
			for _, r := range after {
				for _, n := range r {
					held[n]++
				}
				if r[0] == tc.node {
					leads++
				}
			}
			if leads != tc.leads {
				t.Fatalf("node %d is the preferred leader of %d partitions after the moves, want %d", tc.node, leads, tc.leads)
			}
			if held[tc.node] != tc.want {
				t.Fatalf("node %d holds %d replicas after %d moves, want %d", tc.node, held[tc.node], len(moves), tc.want)
			}
			for n, c := range held {
				if n != tc.node && len(moves) > 0 && c < held[tc.node] {
					t.Fatalf("node %d left with %d replicas, fewer than the new node's %d: %v", n, c, held[tc.node], held)
				}
			}
			if again := PlanSpread(tc.parts, tc.nodes, tc.node); !slices.EqualFunc(again, moves, func(a, b PartitionReplicas) bool {
				return a.Topic == b.Topic && a.Partition == b.Partition && slices.Equal(a.Replicas, b.Replicas)
			}) {
				t.Fatal("the plan differs from the same placement")
			}
		})
	}
}
