package cluster

import (
	"cmp"
	"slices"
)

// PartitionReplicas is a partition's replica nodes, preferred leader
// first.
type PartitionReplicas struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// PlanSpread picks the moves that give node, new among nodes (the active
// brokers, node included), a fair share of the replicas of parts: the
// floor of all replicas over the nodes. Each move replaces one replica of
// the node holding the most (the lowest id on a tie) by node, at the same
// place in the list, so a partition whose preferred leader moves gets node
// as its preferred leader, and leaders spread with the replicas. A
// partition moves at most once and never onto a node holding it already;
// parts are taken by topic and partition, so the plan is the same from the
// same placement. It returns the partitions to move with their target
// replicas, none when node holds its share already. Pure: the caller
// proposes the moves (Reassign, or Kafka's AlterPartitionReassignments).
func PlanSpread(parts []PartitionReplicas, nodes []int32, node int32) []PartitionReplicas {
	if !slices.Contains(nodes, node) || len(nodes) < 2 {
		return nil
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b PartitionReplicas) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	held := map[int32]int{}
	total := 0
	for _, p := range parts {
		for _, r := range p.Replicas {
			held[r]++
			total++
		}
	}
	share := total / len(nodes)
	moved := make([]bool, len(parts))
	var out []PartitionReplicas
	for held[node] < share {
		k, donor, ok := nextSpreadMove(parts, moved, held, nodes, node)
		if !ok {
			break
		}
		target := slices.Clone(parts[k].Replicas)
		target[slices.Index(target, donor)] = node
		moved[k] = true
		held[donor]--
		held[node]++
		out = append(out, PartitionReplicas{Topic: parts[k].Topic, Partition: parts[k].Partition, Replicas: target})
	}
	return out
}

// nextSpreadMove finds the next partition to move onto node: from the
// donor holding the most replicas (among those with a partition node may
// take), its first partition not moved yet and without node.
func nextSpreadMove(parts []PartitionReplicas, moved []bool, held map[int32]int, nodes []int32, node int32) (int, int32, bool) {
	donors := slices.Clone(nodes)
	slices.SortFunc(donors, func(a, b int32) int { return cmp.Or(cmp.Compare(held[b], held[a]), cmp.Compare(a, b)) })
	for _, donor := range donors {
		if donor == node || held[donor] <= held[node]+1 {
			continue // moving from it would not even the counts
		}
		for k, p := range parts {
			if !moved[k] && slices.Contains(p.Replicas, donor) && !slices.Contains(p.Replicas, node) {
				return k, donor, true
			}
		}
	}
	return 0, 0, false
}
