package leaders

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

// Table is the pure core of a node's leader table: time comes in as
// arguments, nothing is sent or read here, and it is not safe for
// concurrent use (Leaders wraps it). Mutators report whether what readers
// see (a group's leader or term, a node's liveness) changed.
type Table struct {
	cfg Config

	// view is the merged table: every group heard of, with the highest
	// term known and its leader (0 unknown).
	view  map[uint64]entry
	nodes map[uint64]*remoteNode // the peers heard from
	local map[uint64]localGroup  // the groups with a replica here

	// The sending side.
	sequence uint64    // of the last heartbeat built, 0 before the first
	lastSent time.Time // when it was built
	lastFull time.Time // when the last full one was built
	// pending holds what the next delta says of each local group whose
	// advertisement changed since the last heartbeat.
	pending map[uint64]transport.LeaderEntry
	// fullFor holds the peers that came alive (first heard, back from
	// silence, a new incarnation) since their last heartbeat from here:
	// they likely missed this node's deltas, so their next one is full.
	fullFor map[uint64]bool
	// wantFrom holds the peers that came alive by a delta: their leaders
	// are unknown here until their next full heartbeat, which this node's
	// heartbeats to them ask for (WantFull) until it comes.
	wantFrom map[uint64]bool
}

// entry is what the table knows of one group.
type entry struct {
	term   uint64
	leader uint64 // replica id; 0 when unknown
}

// remoteNode is what the table knows of a peer.
type remoteNode struct {
	incarnation uint64
	bootID      uint64    // of the sender process last heard
	sequence    uint64    // of its last heartbeat applied
	heardAt     time.Time // when that heartbeat arrived
	alive       bool
	gaps        uint64 // deltas that arrived after a missing sequence
}

// localGroup is a group with a replica on this node, as raft reports it.
type localGroup struct {
	replica    uint64
	leadership replica.Leadership
}

// NewTable returns an empty table for the node cfg names.
func NewTable(cfg Config) (*Table, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{
		cfg:      cfg,
		view:     map[uint64]entry{},
		nodes:    map[uint64]*remoteNode{},
		local:    map[uint64]localGroup{},
		pending:  map[uint64]transport.LeaderEntry{},
		fullFor:  map[uint64]bool{},
		wantFrom: map[uint64]bool{},
	}, nil
}

// Config returns the table's configuration with its defaults.
func (t *Table) Config() Config { return t.cfg }

// merge applies what node from says of group: a higher term always wins;
// in the known term a leader fills an unknown one but never replaces a
// known one (raft elects one leader per term), and leader 0 clears the
// known leader only when from is the node holding it.
func (t *Table) merge(group, term, leader, from uint64) bool {
	cur, ok := t.view[group]
	switch {
	case !ok || term > cur.term:
		t.view[group] = entry{term: term, leader: leader}
		return !ok || cur != t.view[group]
	case term < cur.term:
		return false // stale
	case leader != 0:
		if cur.leader != 0 {
			return false
		}
		t.view[group] = entry{term: term, leader: leader}
		return true
	case cur.leader != 0 && transport.NodeOf(cur.leader) == from:
		t.view[group] = entry{term: term}
		return true
	}
	return false
}

// clearNode forgets every leader on node (its heartbeats stopped, or a new
// incarnation replaced it), keeping the terms so stale news stays stale.
func (t *Table) clearNode(node uint64) bool {
	changed := false
	for g, e := range t.view {
		if e.leader != 0 && transport.NodeOf(e.leader) == node {
			t.view[g] = entry{term: e.term}
			changed = true
		}
	}
	return changed
}

// advertised is what this node tells its peers of a local group: its
// replica as leader only once raft says it leads and is ready.
func advertised(group uint64, lg localGroup) transport.LeaderEntry {
	e := transport.LeaderEntry{Group: group, Term: lg.leadership.Term}
	if lg.leadership.Ready && lg.leadership.Leader == lg.replica {
		e.Leader = lg.replica
	}
	return e
}

// SetLocal records a change of leadership of a group with replica
// replicaID on this node (replica.StateMachine.LeadershipChanged). A
// follower's term clears older leaders; the leader it follows comes from
// that leader's own heartbeats, once ready.
func (t *Table) SetLocal(group, replicaID uint64, l replica.Leadership) (bool, error) {
	if node := transport.NodeOf(replicaID); node != t.cfg.NodeID {
		return false, fmt.Errorf("leaders: group %d: replica %#x is on node %d, not this node %d", group, replicaID, node, t.cfg.NodeID)
	}
	prev, had := t.local[group]
	lg := localGroup{replica: replicaID, leadership: l}
	t.local[group] = lg
	adv := advertised(group, lg)
	// Peers hear of a group while this node leads it and once when it
	// stops; a follower's term changes are not theirs to know from here.
	if was := advertised(group, prev); (had && was.Leader != 0 || adv.Leader != 0) && was != adv {
		t.pending[group] = adv
	}
	return t.merge(group, adv.Term, adv.Leader, t.cfg.NodeID), nil
}

// RemoveLocal records that group's replica left this node (closed,
// deleted or moved): if it led, its peers learn it does no longer.
func (t *Table) RemoveLocal(group uint64) bool {
	lg, ok := t.local[group]
	if !ok {
		return false
	}
	delete(t.local, group)
	if was := advertised(group, lg); was.Leader != 0 {
		t.pending[group] = transport.LeaderEntry{Group: group, Term: was.Term}
	}
	return t.merge(group, lg.leadership.Term, 0, t.cfg.NodeID)
}

// Forget drops group's row once the group no longer exists in the
// cluster (its topic was deleted), so the table does not grow with every
// group ever created. A group with a replica here is kept (RemoveLocal
// first); a peer still leading it brings the row back until it stops.
func (t *Table) Forget(group uint64) bool {
	if _, local := t.local[group]; local {
		return false
	}
	_, ok := t.view[group]
	delete(t.view, group)
	return ok
}

// Receive applies a heartbeat that arrived at now. A heartbeat of an older
// incarnation is ignored; a new incarnation first clears the leaders of
// the old one, and so does a new boot id (the process restarted within
// its incarnation, its sequence counting from 1 again). A delta not newer
// than the last heartbeat applied keeps the sender alive but is not
// applied. A full heartbeat clears the sender's groups it does not list.
// Entries naming a leader on another node than the sender are dropped.
func (t *Table) Receive(now time.Time, hb transport.NodeHeartbeat) (bool, error) {
	if hb.NodeID == t.cfg.NodeID {
		return false, fmt.Errorf("leaders: heartbeat from node %d, this node", hb.NodeID)
	}
	hb.Entries = ownEntries(hb)
	n := t.nodes[hb.NodeID]
	// A peer heard after its liveness timeout was dead in between, even
	// when Expire has not run yet: it missed this node's deltas too.
	changed := n != nil && t.expireNode(hb.NodeID, n, now)
	switch {
	case n != nil && hb.Incarnation < n.incarnation:
		return changed, nil
	case n == nil || hb.Incarnation > n.incarnation:
		changed = n != nil && t.clearNode(hb.NodeID) || changed
		n = &remoteNode{incarnation: hb.Incarnation, bootID: hb.BootID}
		t.nodes[hb.NodeID] = n
	case hb.BootID != n.bootID:
		changed = t.restarted(n, hb) || changed
	case !hb.Full && hb.Sequence <= n.sequence:
		// Stale or repeated, yet the sender sent it: it is alive.
		return t.heard(now, n, hb) || changed, nil
	case !hb.Full && hb.Sequence > n.sequence+1:
		n.gaps++
	}
	n.sequence = hb.Sequence
	if t.heard(now, n, hb) {
		changed = true
	}
	if hb.Full && t.clearUnlisted(hb) {
		changed = true
	}
	for _, e := range hb.Entries {
		if t.merge(e.Group, e.Term, e.Leader, hb.NodeID) {
			changed = true
		}
	}
	return changed, nil
}

// heard records that n, hb's sender, was heard at now, and reports
// whether that brought it back alive.
func (t *Table) heard(now time.Time, n *remoteNode, hb transport.NodeHeartbeat) bool {
	n.heardAt = now
	t.noteRevival(n, hb)
	if n.alive {
		return false
	}
	n.alive = true
	return true
}

// restarted starts n over for hb, the first heartbeat heard of a new
// process of its incarnation (a new boot id): the process leads nothing
// it has not said since it started, so the old one's leaders are cleared;
// its sequence counts afresh; when hb is a delta, the full list the
// process started with was lost, and this node's heartbeats ask for it
// (WantFull); and it knows nothing of this node, so it gets the full list
// next. A
// late heartbeat of the old process, were one to arrive after the new
// one's, would count as one more restart: leaders are cleared, then
// refilled by the full list asked for.
func (t *Table) restarted(n *remoteNode, hb transport.NodeHeartbeat) bool {
	changed := t.clearNode(hb.NodeID)
	n.bootID, n.sequence = hb.BootID, 0
	if !hb.Full && hb.Sequence > 1 {
		n.gaps++
	}
	t.fullFor[hb.NodeID] = true
	if !hb.Full {
		t.wantFrom[hb.NodeID] = true
	}
	return changed
}

// ownEntries returns hb's entries without those naming a leader on
// another node than the sender: a node speaks only for its own replicas.
// ParseNodeHeartbeat refuses such entries already; the table checks again
// so that a heartbeat built any other way cannot install a leader for a
// node that did not say so, nor keep one of the sender's from a full list
// (clearUnlisted sees only what is left).
func ownEntries(hb transport.NodeHeartbeat) []transport.LeaderEntry {
	own := func(e transport.LeaderEntry) bool { return e.Leader == 0 || transport.NodeOf(e.Leader) == hb.NodeID }
	if !slices.ContainsFunc(hb.Entries, func(e transport.LeaderEntry) bool { return !own(e) }) {
		return hb.Entries // the usual case: nothing to copy
	}
	out := make([]transport.LeaderEntry, 0, len(hb.Entries))
	for _, e := range hb.Entries {
		if own(e) {
			out = append(out, e)
		}
	}
	return out
}

// noteRevival records what a heartbeat asks of this node's next one to
// its sender: the full list when the sender asks, or comes alive (it
// likely missed deltas); WantFull while the sender came alive by a delta
// and has not sent its full list yet.
func (t *Table) noteRevival(n *remoteNode, hb transport.NodeHeartbeat) {
	if hb.WantFull || !n.alive {
		t.fullFor[hb.NodeID] = true
	}
	switch {
	case hb.Full:
		delete(t.wantFrom, hb.NodeID)
	case !n.alive:
		t.wantFrom[hb.NodeID] = true
	}
}

// clearUnlisted clears the leaders on hb's sender of the groups its full
// heartbeat does not list (entries are in group order).
func (t *Table) clearUnlisted(hb transport.NodeHeartbeat) bool {
	changed := false
	for g, e := range t.view {
		if e.leader == 0 || transport.NodeOf(e.leader) != hb.NodeID {
			continue
		}
		if _, listed := slices.BinarySearchFunc(hb.Entries, g, func(x transport.LeaderEntry, g uint64) int {
			return cmp.Compare(x.Group, g)
		}); !listed {
			t.view[g] = entry{term: e.term}
			changed = true
		}
	}
	return changed
}

// Expire takes for dead the peers silent for the liveness timeout at now,
// and clears their leaders.
func (t *Table) Expire(now time.Time) bool {
	changed := false
	for id, n := range t.nodes {
		if t.expireNode(id, n, now) {
			changed = true
		}
	}
	return changed
}

// expireNode takes node for dead when silent for the liveness timeout at
// now, and clears its leaders.
func (t *Table) expireNode(id uint64, n *remoteNode, now time.Time) bool {
	if !n.alive || now.Before(n.heardAt.Add(t.cfg.LivenessTimeout)) {
		return false
	}
	n.alive = false
	t.clearNode(id)
	return true
}

// Leader returns the leader of group: its node, replica and term, ok when
// known. When the leader is unknown, term is still the highest known (0
// for a group never heard of).
func (t *Table) Leader(group uint64) (node, replicaID, term uint64, ok bool) {
	e := t.view[group]
	if e.leader == 0 {
		return 0, 0, e.term, false
	}
	return transport.NodeOf(e.leader), e.leader, e.term, true
}

// Alive reports whether node is up at now: this node always, a peer while
// its heartbeats keep arriving within the liveness timeout.
func (t *Table) Alive(node uint64, now time.Time) bool {
	if node == t.cfg.NodeID {
		return true
	}
	n := t.nodes[node]
	return n != nil && n.alive && now.Before(n.heardAt.Add(t.cfg.LivenessTimeout))
}
