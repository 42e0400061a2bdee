package groups

import "github.com/twmb/franz-go/pkg/kmsg"

// CommitRequest identifies who commits: a member of the current generation,
// or (Generation < 0, no member) a client managing offsets itself.
type CommitRequest struct {
	Group      string
	MemberID   string
	InstanceID *string
	Generation int32
}

// CheckCommit reports whether req may commit now. A member's commit also
// keeps its session alive, as Kafka's does.
func (m *Machine) CheckCommit(nowMs int64, req CommitRequest) error {
	if req.Group == "" {
		return ErrInvalidGroupID
	}
	g := m.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 {
			return ErrIllegalGeneration
		}
		if len(m.groups) >= m.cfg.GroupsMax {
			return ErrGroupMaxSize
		}
		return nil
	}
	if g.consumer != nil && len(g.consumer.members) > 0 {
		return g.consumer.checkCommit(req)
	}
	if req.Generation < 0 && g.state == stateEmpty {
		return nil
	}
	mem := g.members[req.MemberID]
	if err := g.checkMember(mem, req.MemberID, req.InstanceID); err != nil {
		return err
	}
	if g.state == stateCompletingRebalance {
		return ErrRebalanceInProgress
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
	return nil
}

// CheckOffsetMetadata reports whether a commit's metadata fits the limit.
func (m *Machine) CheckOffsetMetadata(metadata string) error {
	if len(metadata) > m.cfg.OffsetMetadataBytesMax {
		return ErrOffsetMetadataTooLarge
	}
	return nil
}

// ApplyCommit records offsets the driver has appended to the offsets log.
// A group that does not exist yet is created empty.
func (m *Machine) ApplyCommit(nowMs int64, groupName string, offsets map[TopicPartition]OffsetCommit) {
	g := m.groups[groupName]
	if g == nil {
		g = m.newGroup(groupName)
		g.emptySinceMs = nowMs
	}
	for tp, oc := range offsets {
		g.offsets[tp] = oc
	}
	g.lastCommitMs = nowMs
	g.persisted = true
}

// FetchOffsets returns the group's committed offsets for tps, or all of
// them when tps is nil. Partitions without a commit are absent.
func (m *Machine) FetchOffsets(groupName string, tps []TopicPartition) map[TopicPartition]OffsetCommit {
	out := map[TopicPartition]OffsetCommit{}
	g := m.groups[groupName]
	if g == nil {
		return out
	}
	if tps == nil {
		for tp, oc := range g.offsets {
			out[tp] = oc
		}
		return out
	}
	for _, tp := range tps {
		if oc, ok := g.offsets[tp]; ok {
			out[tp] = oc
		}
	}
	return out
}

// CheckDeleteGroup reports whether the group may be deleted (it exists and
// has no members) and returns the change that deletes it, without applying
// it: the driver writes the change's tombstones first and applies it with
// ApplyDelete only once they are in the log, so a write that fails leaves the
// group as it was. Nothing may reach the machine between the two calls.
func (m *Machine) CheckDeleteGroup(nowMs int64, groupName string) (Change, error) {
	g := m.groups[groupName]
	switch {
	case g == nil:
		return Change{}, ErrGroupNotFound
	case g.liveMembers() > 0 || len(g.pending) > 0:
		return Change{}, ErrNonEmptyGroup
	}
	return deletedGroup(nowMs, g), nil
}

// CheckDeleteOffsets checks an OffsetDelete and returns the change that
// removes the offsets, to be applied with ApplyDelete as for
// CheckDeleteGroup; the change has no offsets when nothing is to be removed.
// A partition of a topic the live members subscribe to is refused with
// ErrSubscribedToTopic; the result has an entry (nil or that error) per
// requested partition.
func (m *Machine) CheckDeleteOffsets(nowMs int64, groupName string, tps []TopicPartition) (map[TopicPartition]error, Change, error) {
	g := m.groups[groupName]
	if g == nil {
		return nil, Change{}, ErrGroupNotFound
	}
	if g.liveMembers() > 0 && g.protocolType != "consumer" {
		return nil, Change{}, ErrNonEmptyGroup
	}
	subscribed := g.subscribedTopics()
	out := make(map[TopicPartition]error, len(tps))
	change := Change{Kind: ChangeOffsetsDeleted, Group: g.name, AtMs: nowMs}
	for _, tp := range tps {
		if subscribed[tp.Topic] {
			out[tp] = ErrSubscribedToTopic
			continue
		}
		if _, seen := out[tp]; seen {
			continue // named twice
		}
		out[tp] = nil
		if _, ok := g.offsets[tp]; ok {
			change.Offsets = append(change.Offsets, tp)
		}
	}
	sortTopicPartitions(change.Offsets)
	return out, change, nil
}

// ApplyDelete applies a change returned by CheckDeleteGroup or
// CheckDeleteOffsets once the driver has written its tombstones.
func (m *Machine) ApplyDelete(c Change) {
	g := m.groups[c.Group]
	if g == nil {
		return
	}
	switch c.Kind {
	case ChangeDeleted:
		delete(m.groups, c.Group)
	case ChangeOffsetsDeleted:
		for _, tp := range c.Offsets {
			delete(g.offsets, tp)
		}
	}
}

// subscribedTopics reads the consumer protocol metadata of the members.
// Metadata a member sent that does not parse subscribes to nothing.
func (g *group) subscribedTopics() map[string]bool {
	topics := map[string]bool{}
	if g.consumer != nil {
		for _, mem := range g.consumer.members {
			for _, t := range mem.topics {
				topics[t] = true
			}
		}
		return topics
	}
	if g.protocolType != "consumer" {
		return topics
	}
	for _, mem := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(mem.metadataFor(g.protocol)); err != nil {
			continue
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics
}

// MemberDescription is one member as DescribeGroups reports it.
type MemberDescription struct {
	MemberID   string
	InstanceID *string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the chosen protocol
	Assignment []byte
}

// GroupDescription is a group as DescribeGroups reports it.
type GroupDescription struct {
	Group        string
	State        string // Empty, PreparingRebalance, CompletingRebalance, Stable or Dead
	ProtocolType string
	Protocol     string
	Generation   int32
	Members      []MemberDescription
	// Consumer is set for a group running the consumer protocol (KIP-848).
	Consumer *ConsumerDescription
}

// Describe reports a group; an unknown group is reported Dead.
func (m *Machine) Describe(groupName string) GroupDescription {
	g := m.groups[groupName]
	if g == nil {
		return GroupDescription{Group: groupName, State: "Dead", Generation: -1}
	}
	if g.consumer != nil {
		return g.describeConsumer()
	}
	d := GroupDescription{Group: g.name, State: g.state.String(), ProtocolType: g.protocolType,
		Protocol: g.protocol, Generation: g.generation}
	for _, id := range g.sortedMemberIDs() {
		mem := g.members[id]
		d.Members = append(d.Members, MemberDescription{MemberID: id, InstanceID: mem.instanceID, ClientID: mem.clientID,
			ClientHost: mem.clientHost, Metadata: mem.metadataFor(g.protocol), Assignment: mem.assignment})
	}
	return d
}

// GroupListing is one group as ListGroups reports it.
type GroupListing struct {
	Group        string
	ProtocolType string
	State        string
	Members      int
	Type         string // classic or consumer
}

// List reports every group, sorted by name.
func (m *Machine) List() []GroupListing {
	out := make([]GroupListing, 0, len(m.groups))
	for _, name := range m.sortedGroupNames() {
		g := m.groups[name]
		l := GroupListing{Group: name, ProtocolType: g.protocolType, State: g.state.String(), Members: len(g.members), Type: "classic"}
		if g.consumer != nil {
			l.State, l.Members, l.Type = g.consumer.state(), len(g.consumer.members), "consumer"
		}
		out = append(out, l)
	}
	return out
}

// RestoreOffset replays one offset record; nil oc is a tombstone.
func (m *Machine) RestoreOffset(groupName string, tp TopicPartition, oc *OffsetCommit) {
	g := m.groups[groupName]
	if oc == nil {
		if g != nil {
			delete(g.offsets, tp)
		}
		return
	}
	if g == nil {
		g = m.newGroup(groupName)
	}
	g.offsets[tp] = *oc
	g.lastCommitMs = max(g.lastCommitMs, oc.CommitTimestampMs)
	g.persisted = true
}

// RestoredGroup is a group metadata record; Deleted for a tombstone.
type RestoredGroup struct {
	Deleted      bool
	ProtocolType string
	Generation   int32
	EmptySinceMs int64
	Assignor     string // a KIP-848 group's (Change.Assignor)
}

// RestoreGroup replays one group metadata record. A tombstone removes the
// group with its offsets, as every tombstone for them follows it in the log
// or was already compacted.
func (m *Machine) RestoreGroup(groupName string, rg RestoredGroup) {
	g := m.groups[groupName]
	if rg.Deleted {
		delete(m.groups, groupName)
		return
	}
	if g == nil {
		g = m.newGroup(groupName)
	}
	g.protocolType, g.generation, g.emptySinceMs = rg.ProtocolType, rg.Generation, rg.EmptySinceMs
	g.persisted = true
	// A consumer group loads as one, empty at its recorded epoch (listed
	// and described as a consumer group before a member rejoins).
	g.consumer = nil
	if rg.ProtocolType == "consumer" && rg.Assignor != "" {
		g.consumer = newConsumerGroup(rg.Generation)
		g.consumer.assignor = rg.Assignor
	}
}
