package replica

import (
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence (design §3.6, M13): a node with 1,000 idle groups spent most
// of its idle CPU ticking them and exchanging their heartbeats. A group
// whose leader has nothing in flight stops ticking, as in CockroachDB:
//
//   - the leader quiesces when it is ready, every entry is committed and
//     applied, every follower has acknowledged the whole log, nothing is
//     held behind a sync, no configuration change or leader transfer is
//     under way, and the node of every follower is alive (the Scheduler's
//     Alive); it sends each follower a last heartbeat marked as quiescing;
//   - a follower that receives that heartbeat from its leader, in its
//     term, while the leader's node is alive, quiesces too: with no ticks
//     it starts no election;
//   - any other message or unreachable report wakes the group; a call (Do)
//     leaves it quiesced only if it left it idle in the same role (a
//     proposal does not; a read of the replica's state does); and so does its watched node (the leader's, or any of the
//     leader's followers') ceasing to be alive: a follower then ticks into
//     an election after its timeout, as if the leader had just gone quiet.
//
// A heartbeat response wakes nothing: it is what a quiescing heartbeat is
// answered with, and it asks nothing of the leader. A woken follower's
// messages (a pre-vote after its election timeout) wake the others, so a
// group woken on one replica only wakes whole.

// quiesceHeartbeat is the leader's last heartbeat to a follower before it
// stops ticking. Raft never sets Reject on a heartbeat and a follower's
// raft ignores it there, so the mark travels in it: a node that does not
// know the mark takes it as an ordinary heartbeat.
func quiesceHeartbeat(from, to, term, commit uint64) *raftpb.Message {
	t, reject := raftpb.MsgHeartbeat, true
	return &raftpb.Message{Type: &t, From: &from, To: &to, Term: &term, Commit: &commit, Reject: &reject}
}

// isQuiesceHeartbeat reports whether m is a leader's quiescing heartbeat.
func isQuiesceHeartbeat(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgHeartbeat && m.GetReject()
}

// wakes reports whether a message from a peer wakes a quiesced group:
// every one but a quiescing heartbeat and a heartbeat response.
func wakes(m *raftpb.Message) bool {
	return !isQuiesceHeartbeat(m) && m.GetType() != raftpb.MsgHeartbeatResp
}

// QuiesceLeader checks whether this replica, a leader, may stop ticking,
// with alive telling whether a replica's node is alive. When it may, it
// returns the quiescing heartbeats to send to its followers and the
// followers to watch; otherwise nil, nil.
func (r *Replica) QuiesceLeader(alive func(replicaID uint64) bool) (msgs []*raftpb.Message, watch []uint64) {
	watch, ok := r.leaderIdle(alive)
	if !ok {
		return nil, nil
	}
	st := r.rn.BasicStatus()
	for _, id := range watch {
		msgs = append(msgs, quiesceHeartbeat(r.id, id, st.GetTerm(), st.GetCommit()))
	}
	return msgs, watch
}

// leaderIdle reports whether this replica is a ready leader with nothing
// in flight whose followers all hold its whole log and live on nodes
// alive, and lists those followers.
func (r *Replica) leaderIdle(alive func(replicaID uint64) bool) (followers []uint64, ok bool) {
	if r.err != nil || r.rn.HasReady() || len(r.held) > 0 || len(r.restores) > 0 || r.pendingConf > r.applied {
		return nil, false
	}
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || !r.leadership.Ready || st.LeadTransferee != 0 ||
		st.GetCommit() != r.lastIndex || r.applied != r.lastIndex {
		return nil, false
	}
	ok = true
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == r.id {
			return
		}
		if pr.Match != r.lastIndex || pr.State != tracker.StateReplicate || !alive(id) {
			ok = false
		}
		followers = append(followers, id)
	})
	slices.Sort(followers)
	return followers, ok
}

// QuiesceFollower checks, after m (a quiescing heartbeat) was stepped,
// whether this replica follows m's sender in m's term, so that it may
// stop ticking while the sender's node is alive.
func (r *Replica) QuiesceFollower(m *raftpb.Message) bool {
	if r.err != nil {
		return false
	}
	st := r.rn.BasicStatus()
	return st.RaftState == raft.StateFollower && st.Lead == m.GetFrom() && st.GetTerm() == m.GetTerm()
}

// quiescence is what a run decided: whether the group may stop ticking,
// and the replicas whose nodes must stay alive for it to.
type quiescence struct {
	quiesce bool
	watch   []uint64
	as      role
}

// role is a replica's place in its group: state, leader and term.
type role struct {
	state      raft.StateType
	lead, term uint64
}

func (r *Replica) role() role {
	st := r.rn.BasicStatus()
	return role{state: st.RaftState, lead: st.Lead, term: st.GetTerm()}
}

// quiesceAfterRun decides, at the end of a run, whether the group may
// quiesce: a follower that just stepped its leader's quiescing heartbeat
// and nothing that wakes, or a leader (not yet quiesced) with nothing in
// flight, which then sends its followers the quiescing heartbeats. The
// worker quiesces the group only if nothing woke it during the run.
func (s *Scheduler) quiesceAfterRun(g *group, ev events) quiescence {
	if !g.opts.Quiesce || s.cfg.Alive == nil || ev.syncErr != nil || len(ev.unreachable) > 0 || g.round != nil {
		// A read round needs the ticks: its heartbeats, and CheckQuorum.
		return quiescence{}
	}
	// The leader's quiescing heartbeat counts if nothing that wakes came
	// after it (its last regular heartbeat may come just before).
	var last *raftpb.Message
	woken := false
	for _, m := range ev.inbox {
		switch {
		case isQuiesceHeartbeat(m):
			last, woken = m, false
		case wakes(m):
			woken = true
		}
	}
	if woken {
		return quiescence{}
	}
	r := g.r
	as := r.role()
	if last != nil {
		if r.QuiesceFollower(last) && s.cfg.Alive(last.GetFrom()) {
			return quiescence{quiesce: true, watch: []uint64{last.GetFrom()}, as: as}
		}
		return quiescence{}
	}
	if ev.quiesced && as == ev.quiescedAs && r.Err() == nil {
		// A heartbeat response, a sync's end, a call: still idle in the
		// same role (a leader's followers already quiesced).
		if as.state == raft.StateLeader {
			if _, ok := r.leaderIdle(s.cfg.Alive); !ok {
				return quiescence{}
			}
		}
		return quiescence{quiesce: true, watch: ev.watch, as: as}
	}
	msgs, watch := r.QuiesceLeader(s.cfg.Alive)
	if msgs == nil {
		return quiescence{}
	}
	s.send.Send(g.id, msgs)
	return quiescence{quiesce: true, watch: watch, as: as}
}

// wakeLocked wakes the group for an event that needs its ticks (a
// message, a call, an unreachable peer): a run that began before it
// does not quiesce the group.
func (g *group) wakeLocked() {
	g.quiesced, g.watch = false, nil
	g.wakes++
}

// setQuiescedLocked records what a run decided, when nothing woke the
// group during it. Ticks queued before it quiesced are dropped.
func (s *Scheduler) setQuiescedLocked(g *group, q quiescence) {
	g.quiesced, g.watch, g.quiescedAs = q.quiesce, q.watch, q.as
	if q.quiesce {
		g.ticks = 0
	}
}

// aliveMemo answers Alive once per replica for one Tick.
func (s *Scheduler) aliveMemo() func(replicaID uint64) bool {
	seen := map[uint64]bool{}
	return func(id uint64) bool {
		a, ok := seen[id]
		if !ok && s.cfg.Alive != nil {
			a = s.cfg.Alive(id)
			seen[id] = a
		}
		return a
	}
}

// stayQuiesced reports whether a quiesced group stays so at a tick: the
// nodes of the replicas it watches are alive. Otherwise it wakes, so a
// follower ticks into an election and a leader heartbeats again.
func (s *Scheduler) stayQuiesced(g *group, alive func(uint64) bool) bool {
	for _, id := range g.watch {
		if !alive(id) {
			g.wakeLocked()
			return false
		}
	}
	return true
}

// Quiesced returns how many groups are quiesced, for gauges and tests.
func (s *Scheduler) Quiesced() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.groups {
		if g.quiesced {
			n++
		}
	}
	return n
}
