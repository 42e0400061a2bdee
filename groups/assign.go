package groups

import "sort"

// Server-side assignors of the consumer protocol (KIP-848): pure functions
// from members' subscriptions, topic sizes and the previous target to the
// new target assignment.

// Assignment is a set of partitions by topic name, each list sorted.
type Assignment map[string][]int32

// TopicInfo is what the assignors and the wire need of a topic.
type TopicInfo struct {
	ID         [16]byte
	Partitions int32
}

type assignMember struct {
	id     string
	topics map[string]bool // subscribed topics that exist
}

const (
	assignorUniform = "uniform"
	assignorRange   = "range"
)

func knownAssignor(name string) bool { return name == assignorUniform || name == assignorRange }

// assignTarget runs the named assignor; members are sorted by id.
func assignTarget(assignor string, members []assignMember, topics map[string]TopicInfo, previous map[string]Assignment) map[string]Assignment {
	if assignor == assignorRange {
		return assignRange(members, topics)
	}
	return assignUniform(members, topics, previous)
}

// assignRange splits each topic's partitions into contiguous ranges over
// its subscribers in member id order, the first ones taking one more when
// the division is not even.
func assignRange(members []assignMember, topics map[string]TopicInfo) map[string]Assignment {
	out := make(map[string]Assignment, len(members))
	for _, m := range members {
		out[m.id] = Assignment{}
	}
	for _, topic := range sortedTopicNames(topics) {
		var subscribers []string
		for _, m := range members {
			if m.topics[topic] {
				subscribers = append(subscribers, m.id)
			}
		}
		if len(subscribers) == 0 {
			continue
		}
		n := topics[topic].Partitions
		per, extra := n/int32(len(subscribers)), n%int32(len(subscribers))
		next := int32(0)
		for i, id := range subscribers {
			count := per
			if int32(i) < extra {
				count++
			}
			for p := next; p < next+count; p++ {
				out[id][topic] = append(out[id][topic], p)
			}
			next += count
		}
	}
	return out
}

// assignUniform spreads every subscribed partition so member loads differ
// by at most one (for members with the same subscription), keeping each
// partition with its previous owner where that keeps the balance: a new
// member takes partitions only from the most loaded.
func assignUniform(members []assignMember, topics map[string]TopicInfo, previous map[string]Assignment) map[string]Assignment {
	out := make(map[string]Assignment, len(members))
	load := make(map[string]int, len(members))
	byID := make(map[string]assignMember, len(members))
	for _, m := range members {
		out[m.id] = Assignment{}
		byID[m.id] = m
	}
	owner := map[TopicPartition]string{}
	for id, a := range previous {
		for topic, ps := range a {
			for _, p := range ps {
				owner[TopicPartition{topic, p}] = id
			}
		}
	}
	var all []TopicPartition
	for _, topic := range sortedTopicNames(topics) {
		for _, m := range members {
			if m.topics[topic] {
				for p := int32(0); p < topics[topic].Partitions; p++ {
					all = append(all, TopicPartition{topic, p})
				}
				break
			}
		}
	}
	if len(members) == 0 {
		return out
	}
	floor, extra := len(all)/len(members), len(all)%len(members)
	assign := func(tp TopicPartition, id string) {
		out[id][tp.Topic] = append(out[id][tp.Topic], tp.Partition)
		load[id]++
	}
	taken := map[TopicPartition]bool{}
	// Sticky passes: first up to the floor, then up to the ceiling for as
	// many members as the remainder allows.
	for pass, limit := 0, floor; pass < 2; pass, limit = pass+1, floor+1 {
		for _, tp := range all {
			id, ok := owner[tp]
			if taken[tp] || !ok || !byID[id].topics[tp.Topic] || load[id] >= limit {
				continue
			}
			if pass == 1 {
				if extra == 0 {
					break
				}
				extra--
			}
			assign(tp, id)
			taken[tp] = true
		}
	}
	for _, tp := range all {
		if taken[tp] {
			continue
		}
		best := ""
		for _, m := range members {
			if m.topics[tp.Topic] && (best == "" || load[m.id] < load[best]) {
				best = m.id
			}
		}
		assign(tp, best)
	}
	for _, a := range out {
		for topic := range a {
			sort.Slice(a[topic], func(i, j int) bool { return a[topic][i] < a[topic][j] })
		}
	}
	return out
}

func sortedTopicNames(topics map[string]TopicInfo) []string {
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
