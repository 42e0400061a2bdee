package meta

import (
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// The read accessors return copies: the state belongs to the machine, and a
// caller keeping an answer sees it unchanged by later entries.

// ClusterID is the cluster's id.
func (m *Machine) ClusterID() string { return m.state.ClusterId }

// AppliedIndex is the index of the last entry applied.
func (m *Machine) AppliedIndex() uint64 { return m.state.AppliedIndex }

// State returns a copy of the whole state.
func (m *Machine) State() *metav1.State { return proto.CloneOf(m.state) }

// Topic returns a copy of the named topic.
func (m *Machine) Topic(name string) (*metav1.Topic, bool) {
	t, _, ok := m.findTopic(name)
	if !ok {
		return nil, false
	}
	return proto.CloneOf(t), true
}

// TopicByID returns a copy of the topic with id.
func (m *Machine) TopicByID(id [16]byte) (*metav1.Topic, bool) {
	t, ok := m.index.topicIDs[id]
	if !ok {
		return nil, false
	}
	return proto.CloneOf(t), true
}

// Topics returns a copy of every topic, by name.
func (m *Machine) Topics() []*metav1.Topic {
	out := make([]*metav1.Topic, len(m.state.Topics))
	for i, t := range m.state.Topics {
		out[i] = proto.CloneOf(t)
	}
	return out
}

// Assignment is one partition's placement, as the replica manager of a
// node reads it.
type Assignment struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
	GroupID   uint64
	// Replicas are the voters; TargetReplicas those a running reassignment
	// (ReassignmentID) moves to, nil when none runs.
	Replicas        []uint64
	TargetReplicas  []uint64
	ReassignmentID  uint64
	PreferredLeader uint64
}

func assignment(t *metav1.Topic, p *metav1.Partition) Assignment {
	return Assignment{Topic: t.Name, TopicID: [16]byte(t.Id), Partition: p.Index, GroupID: p.GroupId,
		Replicas: slices.Clone(p.Replicas), TargetReplicas: slices.Clone(p.TargetReplicas),
		ReassignmentID: p.ReassignmentId, PreferredLeader: p.PreferredLeader}
}

// Group returns the partition whose Raft group is groupID.
func (m *Machine) Group(groupID uint64) (Assignment, bool) {
	g, ok := m.index.groups[groupID]
	if !ok {
		return Assignment{}, false
	}
	return assignment(g.topic, g.partition), true
}

// PartitionsOf lists the partitions, by topic name and index, that replica
// serves or a reassignment is adding it to: the groups a node must run
// under that replica id.
func (m *Machine) PartitionsOf(replica uint64) []Assignment {
	return m.partitionsWhere(func(rs []uint64) bool { return slices.Contains(rs, replica) })
}

// PartitionsOfNode lists the partitions with a replica or reassignment
// target on nodeID under any incarnation (a node finds there the replicas
// of its lost incarnations too, which it must not run).
func (m *Machine) PartitionsOfNode(nodeID int32) []Assignment {
	return m.partitionsWhere(func(rs []uint64) bool { return onNode(rs, nodeID) })
}

func (m *Machine) partitionsWhere(match func([]uint64) bool) []Assignment {
	var out []Assignment
	for _, t := range m.state.Topics {
		for _, p := range t.Partitions {
			if match(p.Replicas) || match(p.TargetReplicas) {
				out = append(out, assignment(t, p))
			}
		}
	}
	return out
}
