package groups

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The consumer protocol (KIP-848): members heartbeat their subscription and
// the partitions they own; the coordinator computes a target assignment at
// each group epoch and walks every member to it, taking partitions away
// (revocation) before giving them to another member.

// ConsumerHeartbeatRequest is a ConsumerGroupHeartbeat. Nil fields mean
// "unchanged since the last heartbeat".
type ConsumerHeartbeatRequest struct {
	Group              string
	MemberID           string
	MemberEpoch        int32
	InstanceID         *string
	RackID             *string
	ClientID           string
	ClientHost         string
	RebalanceTimeoutMs int32
	SubscribedTopics   []string
	SubscribedRegex    *string
	Assignor           *string
	Owned              Assignment // partitions the member holds, by topic name
	// Topics is the cluster's topics now, filled in by the driver.
	Topics map[string]TopicInfo
}

// ConsumerHeartbeatResult answers a ConsumerGroupHeartbeat.
type ConsumerHeartbeatResult struct {
	Err                 error
	MemberID            string
	MemberEpoch         int32
	HeartbeatIntervalMs int32
	Assignment          Assignment // nil with an error or on leave
	// join names the join (a heartbeat at epoch 0) that admitted the
	// member this answers, 0 for any other: ConsumerJoinUnanswered takes
	// out that member only, never one a later join admitted again under
	// the same id and epoch (after the group was loaded again).
	join uint64
}

type consumerGroup struct {
	epoch           int32 // bumped by every change of members, subscriptions or topic sizes
	assignmentEpoch int32
	// persistedEpoch is the highest epoch a record in the offsets log
	// holds: a member hears an epoch only once it is durable, so the
	// group loaded again starts above every epoch handed out.
	persistedEpoch int32
	assignor       string
	members        map[string]*consumerMember
	target         map[string]Assignment
	topicsKey      string // subscribed topics and their sizes at the last assignment
}

type consumerMember struct {
	id                 string
	instanceID         *string
	rackID             *string
	clientID           string
	clientHost         string
	epoch              int32
	previousEpoch      int32
	topics             []string
	regex              *topicRegex
	rebalanceTimeoutMs int32
	join               uint64     // the join that admitted it, numbered by Machine.joinSeq
	assigned           Assignment // what the member may consume now
	revoking           Assignment // taken away, not yet confirmed released
	sessionDeadlineMs  int64
	revokeDeadlineMs   int64
}

// liveMembers counts members of either protocol.
func (g *group) liveMembers() int {
	n := len(g.members)
	if g.consumer != nil {
		n += len(g.consumer.members)
	}
	return n
}

// ConsumerHeartbeat handles a ConsumerGroupHeartbeat.
func (m *Machine) ConsumerHeartbeat(nowMs int64, req ConsumerHeartbeatRequest) ConsumerHeartbeatResult {
	fail := func(err error) ConsumerHeartbeatResult {
		return ConsumerHeartbeatResult{Err: err, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch}
	}
	if err := m.checkConsumerHeartbeat(req); err != nil {
		return fail(err)
	}
	g := m.groups[req.Group]
	if req.MemberEpoch < 0 {
		if g == nil || g.consumer == nil || g.consumer.members[req.MemberID] == nil {
			return fail(ErrUnknownMemberID)
		}
		m.removeConsumerMember(nowMs, g, g.consumer.members[req.MemberID], req.Topics)
		return ConsumerHeartbeatResult{MemberID: req.MemberID, MemberEpoch: req.MemberEpoch}
	}
	if g == nil {
		if len(m.groups) >= m.cfg.GroupsMax {
			return fail(ErrGroupMaxSize)
		}
		g = m.newGroup(req.Group)
		g.emptySinceMs = nowMs
	}
	if g.consumer == nil {
		if len(g.members) > 0 || len(g.pending) > 0 {
			return fail(ErrNotConsumerGroup)
		}
		g.consumer = newConsumerGroup(g.generation)
		g.protocolType = "consumer"
	}
	mem, changed, err := m.consumerMemberFor(nowMs, g, req)
	if err != nil {
		return fail(err)
	}
	cg := g.consumer
	if req.Assignor != nil && *req.Assignor != cg.assignor {
		cg.assignor, changed = *req.Assignor, true
	}
	if key := cg.subscriptionKey(req.Topics); changed || key != cg.topicsKey {
		cg.bump(req.Topics)
	}
	cg.reconcile(nowMs, mem, req.Owned)
	res := ConsumerHeartbeatResult{MemberID: mem.id, MemberEpoch: mem.epoch,
		HeartbeatIntervalMs: m.cfg.ConsumerHeartbeatIntervalMs, Assignment: mem.assigned.clone()}
	if req.MemberEpoch == 0 {
		res.join = mem.join
	}
	return res
}

func (m *Machine) checkConsumerHeartbeat(req ConsumerHeartbeatRequest) error {
	switch {
	case req.Group == "":
		return ErrInvalidGroupID
	case req.MemberEpoch < -2:
		return ErrInvalidRequest
	case req.MemberEpoch != 0 && req.MemberID == "":
		return ErrUnknownMemberID
	case req.MemberEpoch == 0 && (req.SubscribedTopics == nil && req.SubscribedRegex == nil || len(req.Owned) > 0 || req.RebalanceTimeoutMs <= 0):
		return ErrInvalidRequest
	case req.Assignor != nil && !knownAssignor(*req.Assignor):
		return ErrUnsupportedAssignor
	}
	if req.SubscribedRegex != nil {
		if _, err := regexp.Compile(*req.SubscribedRegex); err != nil {
			return ErrInvalidRegex
		}
	}
	return nil
}

// consumerMemberFor finds or admits the member and applies what the
// heartbeat changes; changed reports a change that needs a new epoch.
func (m *Machine) consumerMemberFor(nowMs int64, g *group, req ConsumerHeartbeatRequest) (*consumerMember, bool, error) {
	cg := g.consumer
	changed := false
	mem := cg.members[req.MemberID]
	switch {
	case req.MemberEpoch == 0:
		if req.InstanceID != nil {
			for _, other := range cg.sortedMembers() {
				if other.id != req.MemberID && other.instanceID != nil && *other.instanceID == *req.InstanceID {
					m.dropConsumerMember(cg, other) // a restarted static member replaces its old self
					changed = true
				}
			}
		}
		if mem == nil {
			if len(cg.members) >= m.cfg.MembersPerGroupMax {
				return nil, false, ErrGroupMaxSize
			}
			id := req.MemberID
			if id == "" {
				id = m.newMemberID(req.ClientID)
			}
			mem = &consumerMember{id: id, assigned: Assignment{}}
			cg.members[id] = mem
		}
		mem.epoch, mem.previousEpoch, mem.assigned, mem.revoking, mem.revokeDeadlineMs = 0, 0, Assignment{}, nil, 0
		m.joinSeq++
		mem.join = m.joinSeq
		changed = true
	case mem == nil:
		return nil, false, ErrUnknownMemberID
	case req.MemberEpoch != mem.epoch:
		// A member that missed our last answer may repeat its previous
		// epoch, as long as it claims nothing it was not given.
		if req.MemberEpoch != mem.previousEpoch || !mem.assigned.covers(req.Owned) {
			return nil, false, ErrFencedMemberEpoch
		}
	}
	mem.instanceID, mem.clientID, mem.clientHost = req.InstanceID, req.ClientID, req.ClientHost
	if req.RackID != nil {
		mem.rackID = req.RackID
	}
	if req.RebalanceTimeoutMs > 0 {
		mem.rebalanceTimeoutMs = req.RebalanceTimeoutMs
	}
	mem.sessionDeadlineMs = nowMs + int64(m.cfg.ConsumerSessionTimeoutMs)
	if req.SubscribedTopics != nil {
		topics := slices.Clone(req.SubscribedTopics)
		sort.Strings(topics)
		topics = slices.Compact(topics)
		if !slices.Equal(topics, mem.topics) {
			mem.topics, changed = topics, true
		}
	}
	if req.SubscribedRegex != nil && (mem.regex == nil || mem.regex.source != *req.SubscribedRegex) {
		mem.regex, changed = newTopicRegex(*req.SubscribedRegex), true
	}
	return mem, changed, nil
}

// topicRegex is a member's subscription by regular expression (KIP-848).
type topicRegex struct {
	source string         // as the member sent it
	whole  *regexp.Regexp // source anchored at both ends
}

// newTopicRegex compiles a regular expression the request check accepted.
// Kafka matches it against whole topic names (Java's Matcher.matches), so
// it is anchored: any alternative that spans the whole name matches, not
// only the leftmost one.
func newTopicRegex(source string) *topicRegex {
	return &topicRegex{source: source, whole: regexp.MustCompile(`^(?:` + source + `)$`)}
}

// subscribes reports whether the member consumes topic. A regex is matched
// against every topic name, internal topics such as __consumer_offsets
// included, as Kafka 4's coordinator does; leaving them out is the client's
// choice, made in the regex it sends.
func (mem *consumerMember) subscribes(topic string) bool {
	if slices.Contains(mem.topics, topic) {
		return true
	}
	return mem.regex != nil && mem.regex.whole.MatchString(topic)
}

// subscriptionKey fingerprints the subscribed topics that exist and their
// sizes: a change (a topic created or grown) needs a new assignment.
func (cg *consumerGroup) subscriptionKey(topics map[string]TopicInfo) string {
	var b strings.Builder
	for _, name := range sortedTopicNames(topics) {
		for _, mem := range cg.members {
			if mem.subscribes(name) {
				b.WriteString(name + ":" + strconv.Itoa(int(topics[name].Partitions)) + ",")
				break
			}
		}
	}
	return b.String()
}

// bump starts a new group epoch with a new target assignment.
func (cg *consumerGroup) bump(topics map[string]TopicInfo) {
	cg.epoch++
	members := make([]assignMember, 0, len(cg.members))
	for _, mem := range cg.sortedMembers() {
		am := assignMember{id: mem.id, topics: map[string]bool{}}
		for name := range topics {
			if mem.subscribes(name) {
				am.topics[name] = true
			}
		}
		members = append(members, am)
	}
	cg.target = assignTarget(cg.assignor, members, topics, cg.target)
	cg.assignmentEpoch = cg.epoch
	cg.topicsKey = cg.subscriptionKey(topics)
}

// reconcile walks a member toward its target: first it must give up what
// the target no longer holds for it (keeping its epoch until it confirms),
// then it moves to the group epoch and receives every target partition no
// other member still holds.
func (cg *consumerGroup) reconcile(nowMs int64, mem *consumerMember, owned Assignment) {
	if len(mem.revoking) > 0 {
		if owned == nil || owned.intersects(mem.revoking) {
			return
		}
		mem.revoking, mem.revokeDeadlineMs = nil, 0
	}
	target := cg.target[mem.id]
	if mem.epoch < cg.epoch {
		keep, revoke := mem.assigned.split(target)
		if len(revoke) > 0 {
			mem.assigned, mem.revoking = keep, revoke
			mem.revokeDeadlineMs = nowMs + int64(mem.rebalanceTimeoutMs)
			return
		}
		mem.previousEpoch, mem.epoch = mem.epoch, cg.epoch
	}
	for _, topic := range sortedKeys(target) {
		for _, p := range target[topic] {
			if !mem.assigned.has(topic, p) && !cg.heldByOther(mem.id, topic, p) {
				mem.assigned[topic] = insertSorted(mem.assigned[topic], p)
			}
		}
	}
}

func (cg *consumerGroup) heldByOther(id, topic string, p int32) bool {
	for _, other := range cg.members {
		if other.id != id && (other.assigned.has(topic, p) || other.revoking.has(topic, p)) {
			return true
		}
	}
	return false
}

func (cg *consumerGroup) sortedMembers() []*consumerMember {
	out := make([]*consumerMember, 0, len(cg.members))
	for _, mem := range cg.members {
		out = append(out, mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// state is the group state ConsumerGroupDescribe and ListGroups report.
func (cg *consumerGroup) state() string {
	if len(cg.members) == 0 {
		return "Empty"
	}
	for _, mem := range cg.members {
		if mem.epoch != cg.epoch || len(mem.revoking) > 0 || !mem.assigned.equal(cg.target[mem.id]) {
			return "Reconciling"
		}
	}
	return "Stable"
}

func (m *Machine) dropConsumerMember(cg *consumerGroup, mem *consumerMember) {
	delete(cg.members, mem.id)
	delete(cg.target, mem.id)
}

// newConsumerGroup is an empty consumer group going on from epoch, the
// last one recorded (a group's generation): members rejoin with their own
// ids, and an epoch of theirs from before a load must not come back.
func newConsumerGroup(epoch int32) *consumerGroup {
	return &consumerGroup{assignor: assignorUniform, members: map[string]*consumerMember{}, target: map[string]Assignment{},
		epoch: epoch, assignmentEpoch: epoch, persistedEpoch: epoch}
}

// ConsumerEpochToPersist returns the group record that makes the epoch of
// group's consumer group durable, when none holds it yet: the driver writes
// it before a member hears the epoch (ConsumerEpochPersisted once written).
func (m *Machine) ConsumerEpochToPersist(nowMs int64, group string) (Change, bool) {
	g := m.groups[group]
	if g == nil || g.consumer == nil || g.consumer.epoch <= g.consumer.persistedEpoch {
		return Change{}, false
	}
	return Change{Group: group, AtMs: nowMs, Generation: g.consumer.epoch, ProtocolType: "consumer", Assignor: g.consumer.assignor}, true
}

// ConsumerEpochPersisted records that the offsets log holds a record of
// group's consumer epoch epoch.
func (m *Machine) ConsumerEpochPersisted(group string, epoch int32) {
	if g := m.groups[group]; g != nil && g.consumer != nil {
		g.consumer.persistedEpoch = max(g.consumer.persistedEpoch, epoch)
		g.generation, g.persisted = max(g.generation, epoch), true
	}
}

// ConsumerJoinUnanswered takes out the member a join (a heartbeat at
// epoch 0 whose result was res) admitted when that join could not be
// answered: its epoch's record failed to be written or committed, so the
// caller got a retriable error and never heard the member id (a
// server-made one, at version 0) or rejoins at epoch 0. Kept, it would
// hold its partitions until its session expired. A member its caller
// admitted again since (another join) stays.
func (m *Machine) ConsumerJoinUnanswered(nowMs int64, group string, res ConsumerHeartbeatResult) {
	g := m.groups[group]
	if g == nil || g.consumer == nil || res.join == 0 {
		return
	}
	if mem := g.consumer.members[res.MemberID]; mem != nil && mem.join == res.join {
		m.removeConsumerMember(nowMs, g, mem, nil)
	}
}

// removeConsumerMember takes a member out (leave, expired session, missed
// revocation, a join that could not be answered) and re-assigns its
// partitions.
func (m *Machine) removeConsumerMember(nowMs int64, g *group, mem *consumerMember, topics map[string]TopicInfo) {
	m.dropConsumerMember(g.consumer, mem)
	if topics == nil {
		topics = g.consumer.lastTopics()
	}
	g.consumer.bump(topics)
	if len(g.consumer.members) == 0 {
		g.emptySinceMs, g.persisted = nowMs, true
		m.ready.Changes = append(m.ready.Changes, Change{Kind: ChangeEmpty, Group: g.name, AtMs: nowMs,
			Generation: g.consumer.epoch, ProtocolType: "consumer", Assignor: g.consumer.assignor})
	}
}

// lastTopics rebuilds topic sizes from the last assignment's fingerprint,
// for re-assigning when no heartbeat brought fresh metadata (a timer).
// Topic ids are not needed for assignment.
func (cg *consumerGroup) lastTopics() map[string]TopicInfo {
	out := map[string]TopicInfo{}
	for _, entry := range strings.Split(cg.topicsKey, ",") {
		name, size, ok := strings.Cut(entry, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(size)
		out[name] = TopicInfo{Partitions: int32(n)}
	}
	return out
}

// tickConsumer removes members whose session expired or who did not
// release partitions within their rebalance timeout.
func (m *Machine) tickConsumer(nowMs int64, g *group) {
	for _, mem := range g.consumer.sortedMembers() {
		if nowMs >= mem.sessionDeadlineMs || (mem.revokeDeadlineMs > 0 && nowMs >= mem.revokeDeadlineMs) {
			m.removeConsumerMember(nowMs, g, mem, nil)
		}
	}
}

func (cg *consumerGroup) nextDeadlineMs(consider func(int64)) {
	for _, mem := range cg.members {
		consider(mem.sessionDeadlineMs)
		consider(mem.revokeDeadlineMs)
	}
}

func (a Assignment) has(topic string, p int32) bool {
	_, found := slices.BinarySearch(a[topic], p)
	return found
}

func (a Assignment) clone() Assignment {
	out := make(Assignment, len(a))
	for topic, ps := range a {
		out[topic] = slices.Clone(ps)
	}
	return out
}

func (a Assignment) intersects(b Assignment) bool {
	for topic, ps := range a {
		for _, p := range ps {
			if b.has(topic, p) {
				return true
			}
		}
	}
	return false
}

// covers reports whether every partition of b is in a.
func (a Assignment) covers(b Assignment) bool {
	for topic, ps := range b {
		for _, p := range ps {
			if !a.has(topic, p) {
				return false
			}
		}
	}
	return true
}

func (a Assignment) equal(b Assignment) bool { return a.covers(b) && b.covers(a) }

// split divides a into what target also holds and what it does not.
func (a Assignment) split(target Assignment) (keep, drop Assignment) {
	keep, drop = Assignment{}, Assignment{}
	for topic, ps := range a {
		for _, p := range ps {
			if target.has(topic, p) {
				keep[topic] = append(keep[topic], p)
			} else {
				drop[topic] = append(drop[topic], p)
			}
		}
	}
	return keep, drop
}

func insertSorted(ps []int32, p int32) []int32 {
	i, _ := slices.BinarySearch(ps, p)
	return slices.Insert(ps, i, p)
}

func sortedKeys(a Assignment) []string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkCommit applies the consumer protocol's commit rule: the committing
// member's current epoch, or the one before while its last answer may be
// in flight.
func (cg *consumerGroup) checkCommit(req CommitRequest) error {
	mem := cg.members[req.MemberID]
	switch {
	case mem == nil:
		return ErrUnknownMemberID
	case req.Generation == mem.epoch || req.Generation == mem.previousEpoch:
		return nil
	case req.Generation > mem.epoch:
		return ErrFencedMemberEpoch
	}
	return ErrStaleMemberEpoch
}

// ConsumerMemberDescription is one consumer-protocol member.
type ConsumerMemberDescription struct {
	MemberID   string
	InstanceID *string
	RackID     *string
	Epoch      int32
	ClientID   string
	ClientHost string
	Topics     []string
	Regex      *string
	Assigned   Assignment
	Target     Assignment
}

// ConsumerDescription is what ConsumerGroupDescribe reports beyond the
// classic description.
type ConsumerDescription struct {
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []ConsumerMemberDescription
}

// describeConsumer reports a consumer-protocol group, with classic member
// entries whose metadata and assignment use the consumer protocol's
// encoding, so DescribeGroups-based tools show it too.
func (g *group) describeConsumer() GroupDescription {
	cg := g.consumer
	d := GroupDescription{Group: g.name, State: cg.state(), ProtocolType: "consumer", Protocol: cg.assignor, Generation: cg.epoch,
		Consumer: &ConsumerDescription{Epoch: cg.epoch, AssignmentEpoch: cg.assignmentEpoch, Assignor: cg.assignor}}
	for _, mem := range cg.sortedMembers() {
		md := ConsumerMemberDescription{MemberID: mem.id, InstanceID: mem.instanceID, RackID: mem.rackID, Epoch: mem.epoch,
			ClientID: mem.clientID, ClientHost: mem.clientHost, Topics: slices.Clone(mem.topics),
			Assigned: mem.assigned.clone(), Target: cg.target[mem.id].clone()}
		if mem.regex != nil {
			regex := mem.regex.source
			md.Regex = &regex
		}
		d.Consumer.Members = append(d.Consumer.Members, md)
		metadata := kmsg.NewConsumerMemberMetadata()
		metadata.Topics = md.Topics
		assignment := kmsg.NewConsumerMemberAssignment()
		for _, topic := range sortedKeys(md.Assigned) {
			assignment.Topics = append(assignment.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: topic, Partitions: md.Assigned[topic]})
		}
		d.Members = append(d.Members, MemberDescription{MemberID: mem.id, InstanceID: mem.instanceID, ClientID: mem.clientID,
			ClientHost: mem.clientHost, Metadata: metadata.AppendTo(nil), Assignment: assignment.AppendTo(nil)})
	}
	return d
}
