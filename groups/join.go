package groups

import "bytes"

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group              string
	MemberID           string
	InstanceID         *string
	ClientID           string
	ClientHost         string
	SessionTimeoutMs   int32
	RebalanceTimeoutMs int32
	ProtocolType       string
	Protocols          []Protocol
	// RequireKnownMemberID is set for JoinGroup v4+: a new dynamic member
	// first gets an id (MEMBER_ID_REQUIRED) and joins again with it.
	RequireKnownMemberID bool
}

// JoinedMember is one member as the leader sees it in its JoinGroup answer.
type JoinedMember struct {
	MemberID   string
	InstanceID *string
	Metadata   []byte
}

// JoinResult is a JoinGroup answer. Members is set for the leader only.
type JoinResult struct {
	Err          error
	MemberID     string
	Generation   int32
	ProtocolType string
	Protocol     string
	LeaderID     string
	Members      []JoinedMember
}

// Join handles a JoinGroup. The answer comes now or later through Ready,
// under w.
func (m *Machine) Join(nowMs int64, w Waiter, req JoinRequest) {
	if res, done := m.join(nowMs, w, req); done {
		m.ready.Joins = append(m.ready.Joins, JoinReply{w, res})
	}
}

func (m *Machine) join(nowMs int64, w Waiter, req JoinRequest) (JoinResult, bool) {
	fail := func(err error) (JoinResult, bool) {
		return JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}, true
	}
	metadataBytes := 0
	for _, p := range req.Protocols {
		metadataBytes += len(p.Name) + len(p.Metadata)
	}
	switch {
	case req.Group == "":
		return fail(ErrInvalidGroupID)
	case req.SessionTimeoutMs < m.cfg.SessionTimeoutMinMs || req.SessionTimeoutMs > m.cfg.SessionTimeoutMaxMs:
		return fail(ErrInvalidSessionTimeout)
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		return fail(ErrInconsistentProtocol)
	case metadataBytes > m.cfg.ProtocolMetadataBytesMax:
		return fail(ErrMetadataTooLarge)
	}
	g := m.groups[req.Group]
	if g == nil {
		if len(m.groups) >= m.cfg.GroupsMax {
			return fail(ErrGroupMaxSize)
		}
		g = m.newGroup(req.Group)
	}
	if g.consumer != nil {
		if len(g.consumer.members) > 0 {
			return fail(ErrInconsistentProtocol)
		}
		g.consumer = nil // an empty consumer group turns classic
	}
	if !g.accepts(req) {
		return fail(ErrInconsistentProtocol)
	}
	if req.MemberID == "" {
		return m.joinNewMember(nowMs, w, g, req)
	}
	return m.joinKnownMember(nowMs, w, g, req)
}

// accepts reports whether req's protocol type matches the group's and it
// shares a protocol with every member.
func (g *group) accepts(req JoinRequest) bool {
	if len(g.members) == 0 {
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		if g.allSupport(p.Name, req.MemberID) {
			return true
		}
	}
	return false
}

// allSupport reports whether every member but except supports protocol.
func (g *group) allSupport(protocol, except string) bool {
	for id, mem := range g.members {
		if id != except && mem.metadataFor(protocol) == nil {
			return false
		}
	}
	return true
}

func (mem *member) metadataFor(protocol string) []byte {
	for _, p := range mem.protocols {
		if p.Name == protocol {
			if p.Metadata == nil {
				return []byte{}
			}
			return p.Metadata
		}
	}
	return nil
}

func (m *Machine) joinNewMember(nowMs int64, w Waiter, g *group, req JoinRequest) (JoinResult, bool) {
	if req.InstanceID != nil {
		if oldID, known := g.static[*req.InstanceID]; known {
			return m.rejoinStatic(nowMs, w, g, g.members[oldID], req)
		}
	}
	if len(g.members)+len(g.pending) >= m.cfg.MembersPerGroupMax {
		return JoinResult{Err: ErrGroupMaxSize, Generation: -1}, true
	}
	id := m.newMemberID(req.ClientID)
	if req.InstanceID == nil && req.RequireKnownMemberID {
		g.pending[id] = nowMs + int64(req.SessionTimeoutMs)
		return JoinResult{Err: ErrMemberIDRequired, MemberID: id, Generation: -1}, true
	}
	m.addMember(nowMs, w, g, id, req)
	return JoinResult{}, false
}

func (m *Machine) addMember(nowMs int64, w Waiter, g *group, id string, req JoinRequest) {
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
	}
	m.joinSeq++
	mem := &member{id: id, joinOrder: m.joinSeq}
	mem.update(nowMs, req)
	mem.awaitingJoin, mem.joinWaiter = true, w
	g.members[id] = mem
	if req.InstanceID != nil {
		g.static[*req.InstanceID] = id
	}
	if g.state == statePreparingRebalance {
		m.maybeCompleteJoin(nowMs, g)
		return
	}
	m.prepareRebalance(nowMs, g)
}

func (mem *member) update(nowMs int64, req JoinRequest) {
	mem.instanceID = req.InstanceID
	mem.clientID, mem.clientHost = req.ClientID, req.ClientHost
	mem.sessionTimeoutMs, mem.rebalanceTimeoutMs = req.SessionTimeoutMs, req.RebalanceTimeoutMs
	mem.protocols = req.Protocols
	mem.sessionDeadlineMs = nowMs + int64(req.SessionTimeoutMs)
}

// rejoinStatic admits a restarted static member under a new member id,
// fencing the old one. A follower coming back with unchanged protocols gets
// the current generation without a rebalance (KIP-345).
func (m *Machine) rejoinStatic(nowMs int64, w Waiter, g *group, old *member, req JoinRequest) (JoinResult, bool) {
	if old.joinWaiter != 0 {
		m.ready.Joins = append(m.ready.Joins, JoinReply{old.joinWaiter, JoinResult{Err: ErrFencedInstanceID, MemberID: old.id, Generation: -1}})
		old.joinWaiter = 0
	}
	if old.syncWaiter != 0 {
		m.ready.Syncs = append(m.ready.Syncs, SyncReply{old.syncWaiter, SyncResult{Err: ErrFencedInstanceID}})
		old.syncWaiter = 0
	}
	newID := m.newMemberID(req.ClientID)
	delete(g.members, old.id)
	if g.leader == old.id {
		g.leader = newID
	}
	unchanged := protocolsEqual(old.protocols, req.Protocols)
	old.id = newID
	g.members[newID] = old
	g.static[*req.InstanceID] = newID
	old.update(nowMs, req)
	if g.state == stateStable && unchanged && g.leader != newID {
		return g.currentJoinResult(old), true
	}
	old.awaitingJoin, old.joinWaiter = true, w
	if g.state == statePreparingRebalance {
		m.maybeCompleteJoin(nowMs, g)
	} else {
		m.prepareRebalance(nowMs, g)
	}
	return JoinResult{}, false
}

func (m *Machine) joinKnownMember(nowMs int64, w Waiter, g *group, req JoinRequest) (JoinResult, bool) {
	if _, pending := g.pending[req.MemberID]; pending {
		delete(g.pending, req.MemberID)
		m.addMember(nowMs, w, g, req.MemberID, req)
		return JoinResult{}, false
	}
	mem := g.members[req.MemberID]
	if err := g.checkMember(mem, req.MemberID, req.InstanceID); err != nil {
		return JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}, true
	}
	unchanged := protocolsEqual(mem.protocols, req.Protocols)
	switch g.state {
	case stateCompletingRebalance:
		if unchanged {
			mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
			return g.currentJoinResult(mem), true
		}
	case stateStable:
		if unchanged && g.leader != mem.id {
			mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
			return g.currentJoinResult(mem), true
		}
	}
	if mem.joinWaiter != 0 { // a retried JoinGroup replaces the earlier one
		m.ready.Joins = append(m.ready.Joins, JoinReply{mem.joinWaiter, JoinResult{Err: ErrRebalanceInProgress, MemberID: mem.id, Generation: -1}})
	}
	mem.update(nowMs, req)
	mem.awaitingJoin, mem.joinWaiter = true, w
	if g.state == statePreparingRebalance {
		m.maybeCompleteJoin(nowMs, g)
	} else {
		m.prepareRebalance(nowMs, g)
	}
	return JoinResult{}, false
}

// checkMember applies the member and static-instance checks every request
// by a member shares.
func (g *group) checkMember(mem *member, memberID string, instanceID *string) error {
	if instanceID != nil {
		if current, known := g.static[*instanceID]; known && current != memberID {
			return ErrFencedInstanceID
		}
	}
	if mem == nil {
		return ErrUnknownMemberID
	}
	return nil
}

func protocolsEqual(a, b []Protocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

func (g *group) currentJoinResult(mem *member) JoinResult {
	res := JoinResult{MemberID: mem.id, Generation: g.generation, ProtocolType: g.protocolType,
		Protocol: g.protocol, LeaderID: g.leader}
	if mem.id == g.leader {
		for _, id := range g.sortedMemberIDs() {
			other := g.members[id]
			res.Members = append(res.Members, JoinedMember{MemberID: id, InstanceID: other.instanceID, Metadata: other.metadataFor(g.protocol)})
		}
	}
	return res
}

// prepareRebalance starts a new join phase. Members answering within the
// largest rebalance timeout make the next generation.
func (m *Machine) prepareRebalance(nowMs int64, g *group) {
	if g.state == stateCompletingRebalance {
		for _, id := range g.sortedMemberIDs() {
			mem := g.members[id]
			if mem.syncWaiter != 0 {
				m.ready.Syncs = append(m.ready.Syncs, SyncReply{mem.syncWaiter, SyncResult{Err: ErrRebalanceInProgress}})
				mem.syncWaiter = 0
			}
		}
	}
	var timeoutMs int64
	for _, mem := range g.members {
		timeoutMs = max(timeoutMs, int64(mem.rebalanceTimeoutMs))
	}
	g.initialDelay = false
	if g.state == stateEmpty && m.cfg.InitialRebalanceDelayMs > 0 {
		timeoutMs = min(timeoutMs, int64(m.cfg.InitialRebalanceDelayMs))
		g.initialDelay = true
	}
	g.state = statePreparingRebalance
	g.rebalanceDeadlineMs = nowMs + timeoutMs
	m.maybeCompleteJoin(nowMs, g)
}

func (m *Machine) maybeCompleteJoin(nowMs int64, g *group) {
	if g.state != statePreparingRebalance || g.initialDelay || len(g.pending) > 0 {
		return
	}
	for _, mem := range g.members {
		if !mem.awaitingJoin {
			return
		}
	}
	m.completeJoin(nowMs, g)
}

// completeJoin ends the join phase: members that did not rejoin are
// dropped, the generation advances and every joined member is answered.
func (m *Machine) completeJoin(nowMs int64, g *group) {
	for _, id := range g.sortedMemberIDs() {
		if mem := g.members[id]; !mem.awaitingJoin {
			m.removeMember(g, mem)
		}
	}
	clear(g.pending)
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader, g.emptySinceMs, g.persisted = stateEmpty, "", "", nowMs, true
		m.ready.Changes = append(m.ready.Changes, Change{Kind: ChangeEmpty, Group: g.name, AtMs: nowMs,
			Generation: g.generation, ProtocolType: g.protocolType})
		return
	}
	ids := g.sortedMemberIDs()
	g.protocol = g.selectProtocol(ids)
	if g.members[g.leader] == nil {
		g.leader = ids[0]
	}
	g.state = stateCompletingRebalance
	var timeoutMs int64
	for _, mem := range g.members {
		timeoutMs = max(timeoutMs, int64(mem.rebalanceTimeoutMs))
	}
	g.syncDeadlineMs = nowMs + timeoutMs
	m.ready.Rebalances++
	for _, id := range ids {
		mem := g.members[id]
		mem.awaitingJoin, mem.synced, mem.assignment = false, false, nil
		mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
		if mem.joinWaiter != 0 {
			m.ready.Joins = append(m.ready.Joins, JoinReply{mem.joinWaiter, g.currentJoinResult(mem)})
			mem.joinWaiter = 0
		}
	}
}

// selectProtocol picks, among the protocols every member supports, the one
// most members list first (earliest-listed wins a tie in member order), as
// Kafka's vote does.
func (g *group) selectProtocol(ids []string) string {
	votes := map[string]int{}
	var order []string
	for _, id := range ids {
		for _, p := range g.members[id].protocols {
			if g.allSupport(p.Name, "") {
				if _, seen := votes[p.Name]; !seen {
					order = append(order, p.Name)
				}
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range order {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}
