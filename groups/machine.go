package groups

import (
	"fmt"
	"sort"
)

// Waiter names a request whose reply the Machine gives later (a JoinGroup
// waiting for the rebalance, a SyncGroup waiting for the leader). The driver
// picks the values; zero means none.
type Waiter uint64

// Protocol is one assignment protocol a member supports, with its metadata.
type Protocol struct {
	Name     string
	Metadata []byte
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// OffsetCommit is a committed offset as stored.
type OffsetCommit struct {
	Offset            int64
	LeaderEpoch       int32
	Metadata          string
	CommitTimestampMs int64
}

type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
)

// String is the state's name as DescribeGroups and ListGroups report it.
func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

type member struct {
	id                 string
	instanceID         *string
	clientID           string
	clientHost         string
	sessionTimeoutMs   int32
	rebalanceTimeoutMs int32
	protocols          []Protocol
	assignment         []byte
	joinOrder          uint64 // the oldest member leads when the leader left
	sessionDeadlineMs  int64
	joinWaiter         Waiter // set while a JoinGroup waits for the rebalance
	syncWaiter         Waiter // set while a SyncGroup waits for the leader
	awaitingJoin       bool
	synced             bool // sent SyncGroup for the current generation
}

type group struct {
	name         string
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	pending      map[string]int64  // member ids handed out, not yet joined -> deadline
	static       map[string]string // group.instance.id -> member id

	rebalanceDeadlineMs int64
	initialDelay        bool // the rebalance waits out its deadline even when all joined
	syncDeadlineMs      int64
	emptySinceMs        int64
	lastCommitMs        int64
	persisted           bool           // the offsets log has records for this group
	consumer            *consumerGroup // set while the group runs the consumer protocol
	offsets             map[TopicPartition]OffsetCommit
}

// ChangeKind says what happened to a group.
type ChangeKind int8

const (
	// ChangeEmpty: the group lost its last member; the driver records when.
	ChangeEmpty ChangeKind = iota + 1
	// ChangeDeleted: the group and its offsets are gone (DeleteGroups or
	// retention); the driver writes tombstones.
	ChangeDeleted
	// ChangeOffsetsDeleted: some offsets are gone (OffsetDelete).
	ChangeOffsetsDeleted
)

// Change is a state change the driver persists.
type Change struct {
	Kind         ChangeKind
	Group        string
	AtMs         int64
	Generation   int32
	ProtocolType string
	// Assignor is a KIP-848 group's server assignor, recorded as the
	// group's protocol: it tells such a group from a classic one of
	// protocol type "consumer" when the log is loaded. Empty for a
	// classic group.
	Assignor string
	Offsets  []TopicPartition // deleted offsets, for ChangeDeleted and ChangeOffsetsDeleted
	// Persisted is false for a deleted group that never reached the log:
	// there is nothing to write tombstones for.
	Persisted bool
}

// JoinReply is a JoinGroup answer given after the call returned.
type JoinReply struct {
	Waiter Waiter
	Result JoinResult
}

// SyncReply is a SyncGroup answer given after the call returned.
type SyncReply struct {
	Waiter Waiter
	Result SyncResult
}

// Ready is what the Machine produced since the last call to Ready.
type Ready struct {
	Joins      []JoinReply
	Syncs      []SyncReply
	Changes    []Change
	Rebalances int // rebalances completed (generations handed out)
}

// Machine holds every group. It is not safe for concurrent use: the driver
// goroutine owns it.
type Machine struct {
	cfg          Config
	memberPrefix string
	memberSeq    uint64
	joinSeq      uint64
	groups       map[string]*group
	ready        Ready
	// txnPending holds the offsets of transactional commits
	// (TxnOffsetCommit) by producer, then group, until the transaction's
	// marker reaches the group's offsets partition (EndTxnOffsets).
	txnPending map[int64]map[string]map[TopicPartition]OffsetCommit
}

// NewMachine returns an empty machine. memberPrefix makes member ids unique
// across restarts (the driver passes random text; tests pass a fixed one).
func NewMachine(cfg Config, memberPrefix string) *Machine {
	return &Machine{cfg: cfg, memberPrefix: memberPrefix, groups: map[string]*group{},
		txnPending: map[int64]map[string]map[TopicPartition]OffsetCommit{}}
}

// Ready returns and clears the accumulated output.
func (m *Machine) Ready() Ready {
	r := m.ready
	m.ready = Ready{}
	return r
}

func (m *Machine) newMemberID(clientID string) string {
	m.memberSeq++
	return fmt.Sprintf("%s-%s-%d", clientID, m.memberPrefix, m.memberSeq)
}

func (m *Machine) newGroup(name string) *group {
	g := &group{name: name, members: map[string]*member{}, pending: map[string]int64{},
		static: map[string]string{}, offsets: map[TopicPartition]OffsetCommit{}}
	m.groups[name] = g
	return g
}

// NextDeadlineMs is the earliest time Tick has work, or 0 when none.
func (m *Machine) NextDeadlineMs() int64 {
	var next int64
	consider := func(t int64) {
		if t > 0 && (next == 0 || t < next) {
			next = t
		}
	}
	for _, g := range m.groups {
		if g.consumer != nil && len(g.consumer.members) > 0 {
			g.consumer.nextDeadlineMs(consider)
			continue
		}
		switch g.state {
		case stateEmpty:
			consider(g.expiryMs(m.cfg.OffsetsRetentionMs))
		case statePreparingRebalance:
			consider(g.rebalanceDeadlineMs)
		case stateCompletingRebalance, stateStable:
			if !g.allSynced() {
				consider(g.syncDeadlineMs)
			}
		}
		for _, mem := range g.members {
			if !mem.awaitingJoin && mem.syncWaiter == 0 {
				consider(mem.sessionDeadlineMs)
			}
		}
		for _, deadline := range g.pending {
			consider(deadline)
		}
	}
	return next
}

func (g *group) expiryMs(retentionMs int64) int64 {
	return max(g.emptySinceMs, g.lastCommitMs) + retentionMs
}

func (g *group) allSynced() bool {
	for _, mem := range g.members {
		if !mem.synced {
			return false
		}
	}
	return true
}

// Tick applies every deadline at or before nowMs: expired sessions, members
// never admitted, rebalance and sync timeouts, and offset retention.
func (m *Machine) Tick(nowMs int64) {
	for _, name := range m.sortedGroupNames() {
		g := m.groups[name]
		if g.consumer != nil && len(g.consumer.members) > 0 {
			m.tickConsumer(nowMs, g)
			continue
		}
		if g.state == stateEmpty {
			// Every deadline NextDeadlineMs reports must be consumed here, or
			// the driver's timer would fire again at once.
			for id, deadline := range g.pending {
				if nowMs >= deadline {
					delete(g.pending, id)
				}
			}
			if len(g.pending) == 0 && nowMs >= g.expiryMs(m.cfg.OffsetsRetentionMs) {
				m.deleteGroup(nowMs, g)
			}
			continue
		}
		m.tickGroup(nowMs, g)
	}
}

func (m *Machine) tickGroup(nowMs int64, g *group) {
	changed := false
	for id, deadline := range g.pending {
		if nowMs >= deadline {
			delete(g.pending, id)
			changed = true
		}
	}
	for _, id := range g.sortedMemberIDs() {
		mem := g.members[id]
		if !mem.awaitingJoin && mem.syncWaiter == 0 && nowMs >= mem.sessionDeadlineMs {
			m.removeMember(g, mem)
			changed = true
		}
	}
	if (g.state == stateCompletingRebalance || g.state == stateStable) && !g.allSynced() && nowMs >= g.syncDeadlineMs {
		// Members that never fetched their assignment would leave their
		// partitions unconsumed: drop them and rebalance.
		for _, id := range g.sortedMemberIDs() {
			if mem := g.members[id]; !mem.synced {
				m.removeMember(g, mem)
			}
		}
		changed = true
	}
	if g.state == statePreparingRebalance && nowMs >= g.rebalanceDeadlineMs {
		g.initialDelay = false
		m.completeJoin(nowMs, g)
		return
	}
	if changed {
		m.membersChanged(nowMs, g)
	}
}

func (m *Machine) sortedGroupNames() []string {
	names := make([]string, 0, len(m.groups))
	for name := range m.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// sortedMemberIDs gives a deterministic order, so replies and scripted
// tests do not depend on map iteration.
func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return g.members[ids[i]].joinOrder < g.members[ids[j]].joinOrder })
	return ids
}

// removeMember drops a member and fails its waiting requests.
func (m *Machine) removeMember(g *group, mem *member) {
	if mem.joinWaiter != 0 {
		m.ready.Joins = append(m.ready.Joins, JoinReply{mem.joinWaiter, JoinResult{Err: ErrUnknownMemberID, MemberID: mem.id, Generation: -1}})
	}
	if mem.syncWaiter != 0 {
		m.ready.Syncs = append(m.ready.Syncs, SyncReply{mem.syncWaiter, SyncResult{Err: ErrUnknownMemberID}})
	}
	if mem.instanceID != nil && g.static[*mem.instanceID] == mem.id {
		delete(g.static, *mem.instanceID)
	}
	delete(g.members, mem.id)
}

// membersChanged reacts to members leaving or expiring.
func (m *Machine) membersChanged(nowMs int64, g *group) {
	switch g.state {
	case stateCompletingRebalance, stateStable:
		m.prepareRebalance(nowMs, g)
	case statePreparingRebalance:
		m.maybeCompleteJoin(nowMs, g)
	}
}

// deleteGroup removes an expired group at once and hands its tombstones to
// the driver through Ready.
func (m *Machine) deleteGroup(nowMs int64, g *group) {
	c := deletedGroup(nowMs, g)
	delete(m.groups, g.name)
	m.ready.Changes = append(m.ready.Changes, c)
}

// deletedGroup is the change that deletes g with all its offsets.
func deletedGroup(nowMs int64, g *group) Change {
	tps := make([]TopicPartition, 0, len(g.offsets))
	for tp := range g.offsets {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	return Change{Kind: ChangeDeleted, Group: g.name, AtMs: nowMs, Offsets: tps, Persisted: g.persisted}
}

func sortTopicPartitions(tps []TopicPartition) {
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
}

// Unload drops every group owned reports true for, as when this node stops
// coordinating them: members waiting in a JoinGroup or SyncGroup are
// answered ErrNotCoordinator, and nothing is written (the log stays as the
// next coordinator will read it). It returns how many groups it dropped.
func (m *Machine) Unload(owned func(group string) bool) int {
	count := 0
	for _, name := range m.sortedGroupNames() {
		if !owned(name) {
			continue
		}
		g := m.groups[name]
		for _, id := range g.sortedMemberIDs() {
			mem := g.members[id]
			if mem.joinWaiter != 0 {
				m.ready.Joins = append(m.ready.Joins, JoinReply{mem.joinWaiter, JoinResult{Err: ErrNotCoordinator, MemberID: mem.id, Generation: -1}})
			}
			if mem.syncWaiter != 0 {
				m.ready.Syncs = append(m.ready.Syncs, SyncReply{mem.syncWaiter, SyncResult{Err: ErrNotCoordinator}})
			}
		}
		delete(m.groups, name)
		count++
	}
	m.dropTxnOffsets(owned)
	return count
}

// Adopt moves the groups restored into from (a Machine an offsets
// partition was replayed into) into m, replacing any of the same name: the
// log is the truth for a partition being loaded. It returns how many
// groups it took.
func (m *Machine) Adopt(from *Machine) int {
	for name, g := range from.groups {
		m.groups[name] = g
	}
	n := len(from.groups)
	from.groups = map[string]*group{}
	for pid, byGroup := range from.txnPending {
		for name, offsets := range byGroup {
			m.AddTxnOffsets(pid, name, offsets)
		}
	}
	from.txnPending = map[int64]map[string]map[TopicPartition]OffsetCommit{}
	return n
}
