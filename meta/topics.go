package meta

import (
	"maps"
	"math"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/cluster/topicrules"
)

// createTopic adds a topic with the leader's id and placement; Apply gives
// its partitions the next group ids.
func (m *Machine) createTopic(c *metav1.CreateTopic) (*metav1.Result, *refusal) {
	if err := topicrules.ValidateName(c.Name); err != nil {
		return nil, refuseWrapped(metav1.ErrorCode_ERROR_CODE_INVALID_TOPIC, err)
	}
	_, at, exists := m.findTopic(c.Name)
	if exists {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_TOPIC_EXISTS, "topic %s already exists", c.Name)
	}
	if r := m.checkNewTopicID(c.Id); r != nil {
		return nil, r
	}
	if _, err := topicrules.PartitionConfig(c.Configs); err != nil {
		return nil, refuseWrapped(metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG, err)
	}
	if len(c.Partitions) < 1 || len(c.Partitions) > PartitionsPerTopicMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS, "topic %s: %d partitions, must be between 1 and %d",
			c.Name, len(c.Partitions), PartitionsPerTopicMax)
	}
	if r := m.checkNewPartitions(c.Name, c.Partitions); r != nil {
		return nil, r
	}
	t := &metav1.Topic{Name: c.Name, Id: slices.Clone(c.Id), Configs: maps.Clone(c.Configs)}
	groups := m.addPartitions(t, c.Partitions)
	m.state.Topics = slices.Insert(m.state.Topics, at, t)
	m.reindex()
	return &metav1.Result{GroupIds: groups}, nil
}

// checkNewTopicID refuses an id that is not 16 bytes, is all zero (Kafka's
// "no id") or belongs to a live topic.
func (m *Machine) checkNewTopicID(id []byte) *refusal {
	if len(id) != 16 || [16]byte(id) == [16]byte{} {
		return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "topic id of %d bytes: must be 16 bytes, not all zero", len(id))
	}
	if t, ok := m.index.topicIDs[[16]byte(id)]; ok {
		return refuse(metav1.ErrorCode_ERROR_CODE_TOPIC_EXISTS, "topic id %x is topic %s's", id, t.Name)
	}
	return nil
}

// checkNewPartitions checks the replica sets of partitions about to be
// added to topic: the cluster's partition bound, the group id space, and
// each set (checkReplicaSet), all of one size.
func (m *Machine) checkNewPartitions(topic string, sets []*metav1.ReplicaSet) *refusal {
	if m.index.partitions+len(sets) > PartitionsMax {
		return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS, "topic %s: %d more partitions would pass the cluster's %d",
			topic, len(sets), PartitionsMax)
	}
	if m.state.NextGroupId > math.MaxUint64-uint64(len(sets)) {
		return refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "group ids exhausted")
	}
	for i, s := range sets {
		if len(s.GetReplicas()) != len(sets[0].GetReplicas()) {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "topic %s: new partition %d has %d replicas, the first %d; all must have the same count",
				topic, i, len(s.GetReplicas()), len(sets[0].GetReplicas()))
		}
		if r := m.checkReplicaSet(s.GetReplicas(), nil); r != nil {
			r.message = "topic " + topic + ": " + r.message
			return r
		}
	}
	return nil
}

// checkReplicaSet refuses a replica set that is empty or too large, names
// one node twice, or names a new replica (one not in kept) that is not the
// current incarnation of an ACTIVE broker: new replicas go only where
// placement may put them, while a move may keep replicas it does not
// replace wherever they are (on a draining broker, say).
func (m *Machine) checkReplicaSet(replicas, kept []uint64) *refusal {
	if len(replicas) < 1 || len(replicas) > ReplicasMax {
		return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "%d replicas, must be between 1 and %d", len(replicas), ReplicasMax)
	}
	for i, r := range replicas {
		if node := NodeOf(r); node < 1 {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "replica %d: node id %d out of range", r, node)
		}
		if slices.ContainsFunc(replicas[:i], func(o uint64) bool { return NodeOf(o) == NodeOf(r) }) {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "node %d listed twice", NodeOf(r))
		}
		if slices.Contains(kept, r) {
			continue
		}
		if PlacementOf(r) != 0 {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "replica %d: a new replica's placement is handed out, not named", r)
		}
		b, _, ok := m.findBroker(NodeOf(r))
		switch {
		case !ok:
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "replica %d: node %d is not registered", r, NodeOf(r))
		case b.Incarnation != IncarnationOf(r):
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "replica %d: node %d is at incarnation %d, not %d",
				r, b.NodeId, b.Incarnation, IncarnationOf(r))
		case b.State != metav1.BrokerState_BROKER_STATE_ACTIVE:
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_REPLICAS, "replica %d: node %d is %s, not active", r, b.NodeId, b.State)
		}
	}
	return nil
}

// addPartitions appends partitions with sets' replicas to t, each with the
// next group id, the first replica its preferred leader. It returns the new
// group ids.
func (m *Machine) addPartitions(t *metav1.Topic, sets []*metav1.ReplicaSet) []uint64 {
	groups := make([]uint64, 0, len(sets))
	for _, s := range sets {
		p := &metav1.Partition{Index: int32(len(t.Partitions)), GroupId: m.state.NextGroupId,
			Replicas: slices.Clone(s.Replicas), PreferredLeader: s.Replicas[0]}
		m.state.NextGroupId++
		t.Partitions = append(t.Partitions, p)
		groups = append(groups, p.GroupId)
	}
	return groups
}

// deleteTopic removes a topic; its group ids are never handed out again.
func (m *Machine) deleteTopic(c *metav1.DeleteTopic) (*metav1.Result, *refusal) {
	_, at, r := m.topicNamed(c.Name, c.Id, true)
	if r != nil {
		return nil, r
	}
	m.state.Topics = slices.Delete(m.state.Topics, at, at+1)
	m.reindex()
	return &metav1.Result{}, nil
}

// topicNamed finds a live topic by name; with idRequired the command must
// carry its id, else an id, when given, must be its id.
func (m *Machine) topicNamed(name string, id []byte, idRequired bool) (*metav1.Topic, int, *refusal) {
	t, at, ok := m.findTopic(name)
	if !ok {
		return nil, 0, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "no topic %s", name)
	}
	if (idRequired || len(id) > 0) && string(id) != string(t.Id) {
		return nil, 0, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %s has id %x, not %x", name, t.Id, id)
	}
	return t, at, nil
}

// createPartitions grows a topic. A stream topic never grows: a stream
// lives in the partition murmur2 of its key picks among the current count.
func (m *Machine) createPartitions(c *metav1.CreatePartitions) (*metav1.Result, *refusal) {
	t, _, r := m.topicNamed(c.Name, c.Id, false)
	if r != nil {
		return nil, r
	}
	if topicrules.IsStream(t.Configs) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_POLICY_VIOLATION,
			"topic %s has cleanup.policy=stream, whose streams would move to other partitions", c.Name)
	}
	if len(c.Partitions) < 1 || len(t.Partitions)+len(c.Partitions) > PartitionsPerTopicMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS, "topic %s has %d partitions; %d more must be at least 1 and end at most at %d",
			c.Name, len(t.Partitions), len(c.Partitions), PartitionsPerTopicMax)
	}
	if r := m.checkNewPartitions(c.Name, c.Partitions); r != nil {
		return nil, r
	}
	groups := m.addPartitions(t, c.Partitions)
	m.reindex()
	return &metav1.Result{GroupIds: groups}, nil
}

// setTopicConfigs replaces a topic's overrides; leaving the stream policy
// needs the force flag, as cluster.SetConfigs does.
func (m *Machine) setTopicConfigs(c *metav1.SetTopicConfigs) (*metav1.Result, *refusal) {
	t, _, r := m.topicNamed(c.Name, c.Id, false)
	if r != nil {
		return nil, r
	}
	next, err := topicrules.PartitionConfig(c.Configs)
	if err != nil {
		return nil, refuseWrapped(metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG, err)
	}
	if err := topicrules.CheckLeaveStream(c.Name, t.Configs, next, c.ForceLeaveStream); err != nil {
		return nil, refuseWrapped(metav1.ErrorCode_ERROR_CODE_POLICY_VIOLATION, err)
	}
	t.Configs = maps.Clone(c.Configs)
	return &metav1.Result{}, nil
}
