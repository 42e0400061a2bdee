package groups

// SyncRequest is a SyncGroup request. Assignments is the leader's
// member id -> assignment; others send none.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   *string
	Generation   int32
	ProtocolType *string // v5+
	Protocol     *string // v5+
	Assignments  map[string][]byte
}

// SyncResult is a SyncGroup answer.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Sync handles a SyncGroup. Followers arriving before the leader wait under
// w for its assignment.
func (m *Machine) Sync(nowMs int64, w Waiter, req SyncRequest) {
	if res, done := m.sync(nowMs, w, req); done {
		m.ready.Syncs = append(m.ready.Syncs, SyncReply{w, res})
	}
}

func (m *Machine) sync(nowMs int64, w Waiter, req SyncRequest) (SyncResult, bool) {
	fail := func(err error) (SyncResult, bool) { return SyncResult{Err: err}, true }
	g := m.groups[req.Group]
	if g == nil || g.state == stateEmpty {
		return fail(ErrUnknownMemberID)
	}
	mem := g.members[req.MemberID]
	if err := g.checkMember(mem, req.MemberID, req.InstanceID); err != nil {
		return fail(err)
	}
	switch {
	case req.Generation != g.generation:
		return fail(ErrIllegalGeneration)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && g.protocol != "" && *req.Protocol != g.protocol:
		return fail(ErrInconsistentProtocol)
	}
	mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
	switch g.state {
	case statePreparingRebalance:
		return fail(ErrRebalanceInProgress)
	case stateStable:
		mem.synced = true
		return g.syncResult(mem), true
	}
	// CompletingRebalance: wait for the leader, or be the leader.
	mem.synced = true
	if mem.syncWaiter != 0 {
		m.ready.Syncs = append(m.ready.Syncs, SyncReply{mem.syncWaiter, SyncResult{Err: ErrRebalanceInProgress}})
	}
	mem.syncWaiter = w
	if mem.id != g.leader {
		return SyncResult{}, false
	}
	for _, id := range g.sortedMemberIDs() {
		other := g.members[id]
		other.assignment = req.Assignments[id]
		if other.syncWaiter != 0 {
			m.ready.Syncs = append(m.ready.Syncs, SyncReply{other.syncWaiter, g.syncResult(other)})
			other.syncWaiter = 0
		}
	}
	g.state = stateStable
	return SyncResult{}, false
}

func (g *group) syncResult(mem *member) SyncResult {
	assignment := mem.assignment
	if assignment == nil {
		assignment = []byte{}
	}
	return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: assignment}
}

// HeartbeatRequest is a Heartbeat request.
type HeartbeatRequest struct {
	Group      string
	MemberID   string
	InstanceID *string
	Generation int32
}

// Heartbeat keeps a member's session alive and tells it of a rebalance.
func (m *Machine) Heartbeat(nowMs int64, req HeartbeatRequest) error {
	g := m.groups[req.Group]
	if g == nil || g.state == stateEmpty {
		return ErrUnknownMemberID
	}
	mem := g.members[req.MemberID]
	if err := g.checkMember(mem, req.MemberID, req.InstanceID); err != nil {
		return err
	}
	if g.state == statePreparingRebalance {
		mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
		return ErrRebalanceInProgress
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	mem.sessionDeadlineMs = nowMs + int64(mem.sessionTimeoutMs)
	return nil
}

// LeaveMember names a member leaving: by member id, or by instance id for
// a static member (LeaveGroup v3+), or both.
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave removes members; the result holds one error (or nil) per member.
// A group that loses members rebalances.
func (m *Machine) Leave(nowMs int64, groupName string, leaving []LeaveMember) []error {
	errs := make([]error, len(leaving))
	g := m.groups[groupName]
	if g == nil {
		for i := range errs {
			errs[i] = ErrUnknownMemberID
		}
		return errs
	}
	removed := false
	for i, lm := range leaving {
		id := lm.MemberID
		if lm.InstanceID != nil {
			current, known := g.static[*lm.InstanceID]
			switch {
			case !known:
				errs[i] = ErrUnknownMemberID
				continue
			case id != "" && id != current:
				errs[i] = ErrFencedInstanceID
				continue
			}
			id = current
		}
		if _, pending := g.pending[id]; pending {
			delete(g.pending, id)
			removed = true
			continue
		}
		mem := g.members[id]
		if mem == nil {
			errs[i] = ErrUnknownMemberID
			continue
		}
		m.removeMember(g, mem)
		removed = true
	}
	if removed {
		m.membersChanged(nowMs, g)
	}
	return errs
}
