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
// place in the list; while node is the preferred leader (first replica)
// of fewer than its share of the partitions, a partition the donor is the
// preferred leader of goes first, so that rebalancing the leaders then
// hands node its share of them too. A partition moves at most once and
// never onto a node holding it already; parts are taken by topic and
// partition, so the plan is the same from the same placement. It returns
// the partitions to move with their target replicas, none when node holds
// its share already. Pure: the caller proposes the moves (Reassign, or
// Kafka's AlterPartitionReassignments).
func PlanSpread(parts []PartitionReplicas, nodes []int32, node int32) []PartitionReplicas {
	if !slices.Contains(nodes, node) || len(nodes) < 2 {
		return nil
	}
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b PartitionReplicas) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	s := spread{parts: parts, moved: make([]bool, len(parts)), held: map[int32]int{}, leads: map[int32]int{}, node: node}
	total := 0
	for _, p := range parts {
		if len(p.Replicas) > 0 {
			s.leads[p.Replicas[0]]++
		}
		for _, r := range p.Replicas {
			s.held[r]++
			total++
		}
	}
	share, leaderShare := total/len(nodes), len(parts)/len(nodes)
	var out []PartitionReplicas
	for s.held[node] < share {
		k, donor, ok := s.next(nodes, s.leads[node] < leaderShare)
		if !ok {
			break
		}
		target := slices.Clone(parts[k].Replicas)
		at := slices.Index(target, donor)
		target[at] = node
		if at == 0 {
			s.leads[donor]--
			s.leads[node]++
		}
		s.moved[k] = true
		s.held[donor]--
		s.held[node]++
		out = append(out, PartitionReplicas{Topic: parts[k].Topic, Partition: parts[k].Partition, Replicas: target})
	}
	return out
}

// spread is PlanSpread's working state: the partitions by topic and
// partition, those moved, and the replicas and preferred leaderships each
// node holds.
type spread struct {
	parts       []PartitionReplicas
	moved       []bool
	held, leads map[int32]int
	node        int32
}

// next finds the next partition to move onto the node: from the donor
// holding the most replicas (among those with a partition the node may
// take), one it is the preferred leader of when wantLeader and it leads
// more than the node would after, one it is not the preferred leader of
// when not wantLeader (the node has its share of them), else its first
// partition not moved yet and without the node.
func (s *spread) next(nodes []int32, wantLeader bool) (int, int32, bool) {
	donors := slices.Clone(nodes)
	slices.SortFunc(donors, func(a, b int32) int { return cmp.Or(cmp.Compare(s.held[b], s.held[a]), cmp.Compare(a, b)) })
	for _, donor := range donors {
		if donor == s.node || s.held[donor] <= s.held[s.node]+1 {
			continue // moving from it would not even the counts
		}
		first := -1
		for k, p := range s.parts {
			if s.moved[k] || !slices.Contains(p.Replicas, donor) || slices.Contains(p.Replicas, s.node) {
				continue
			}
			leads := p.Replicas[0] == donor
			if (wantLeader && leads && s.leads[donor] > s.leads[s.node]+1) || (!wantLeader && !leads) {
				return k, donor, true
			}
			if first < 0 {
				first = k
			}
		}
		if first >= 0 {
			return first, donor, true
		}
	}
	return 0, 0, false
}
