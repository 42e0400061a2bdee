package cluster

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

// What a node reports of its replication (design §9, M13): the figures
// the server's metrics read at scrape time (NodeStats), the commit latency
// of proposals (a histogram, Collectors), and whether the node is a
// caught-up member of the cluster (Health, for /healthz).

// commitSeconds is the time from a proposal on a leader to its apply
// there, for every partition group of the process.
var commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "cairn_cluster_commit_seconds",
	Help:    "Time from a proposal to its apply on the partition's leader.",
	Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
})

// Collectors returns the cluster metrics kept between scrapes.
func Collectors() []prometheus.Collector { return []prometheus.Collector{commitSeconds} }

// NodeStats is a node's replication at one instant.
type NodeStats struct {
	// Leaders counts the partitions this node leads and serves.
	Leaders int
	// UnderReplicated counts the partitions this node leads with a voter
	// it does not count in sync (InSync); ReplicasNotCaughtUp counts those
	// voters.
	UnderReplicated     int
	ReplicasNotCaughtUp int
	// QuiescedGroups counts the Raft groups on this node not ticking.
	QuiescedGroups int
	// MetaLeader is the node id of the metadata group's leader, -1 unknown.
	MetaLeader int32
	// ElectionsStarted counts the elections a local replica of a partition
	// group started by asking its peers for votes (a group of one voter
	// elects itself without one); ElectionsWon the terms in which a local
	// replica became the ready leader.
	ElectionsStarted, ElectionsWon uint64
	// Transport is the node's transport counters (zero on a single node).
	Transport transport.Metrics
}

// nodeCounters are a cluster node's counts kept between scrapes.
type nodeCounters struct {
	electionsStarted, electionsWon atomic.Uint64
}

// Stats reports this node's replication. On a cluster node it reads the
// Raft progress of each partition it leads on its worker, so it costs a
// scheduler call per led partition: a scrape's, not a request's.
func (c *Cluster) Stats() NodeStats {
	st := NodeStats{MetaLeader: c.ControllerID()}
	for _, t := range c.Topics() {
		for _, s := range t.Partitions {
			if !c.slotLeader(s).Local {
				continue
			}
			st.Leaders++
			if !c.cfg.clustered() {
				continue
			}
			if behind := len(s.Replicas) - len(c.caughtUp(s.Group)); behind > 0 {
				st.UnderReplicated++
				st.ReplicasNotCaughtUp += behind
			}
		}
	}
	if c.node == nil {
		return st
	}
	st.QuiescedGroups = c.sched.Quiesced()
	st.ElectionsStarted = c.node.counters.electionsStarted.Load()
	st.ElectionsWon = c.node.counters.electionsWon.Load()
	st.Transport = c.node.tcp.Metrics()
	return st
}

// countingSender is the scheduler's Sender on a cluster node: the
// transport's, counting the elections local partition replicas start.
type countingSender struct {
	replica.Sender
	counters *nodeCounters
}

func (s countingSender) Send(group uint64, msgs []*raftpb.Message) {
	// A candidate sends all its vote requests in one Ready, so one Send.
	if group != controller.GroupID && slices.ContainsFunc(msgs, func(m *raftpb.Message) bool { return m.GetType() == raftpb.MsgVote }) {
		s.counters.electionsStarted.Add(1)
	}
	s.Sender.Send(group, msgs)
}

// commitTimer times a leader's proposals from PrepareProposal to their
// apply. It belongs to the group's worker, like the replica.
type commitTimer struct {
	pending []timedProposal // in index order
	term    uint64
}

type timedProposal struct {
	index, term uint64
	at          time.Time
}

// commitTimedMax bounds the proposals timed at once per group; those
// beyond it are not timed.
const commitTimedMax = 1024

func (t *commitTimer) proposed(at replica.ProposalPoint, now time.Time) {
	if at.Term != t.term {
		t.pending, t.term = t.pending[:0], at.Term
	}
	if len(t.pending) < commitTimedMax {
		t.pending = append(t.pending, timedProposal{index: at.Index, term: at.Term, at: now})
	}
}

// applied observes the proposals the entries up to last applied: those
// applied with the term they were proposed in (another term at their
// index means they were lost, and they are dropped).
func (t *commitTimer) applied(ents []*raftpb.Entry, now time.Time) {
	n := 0
	for _, e := range ents {
		for n < len(t.pending) && t.pending[n].index <= e.GetIndex() {
			if p := t.pending[n]; p.index == e.GetIndex() && p.term == e.GetTerm() {
				commitSeconds.Observe(now.Sub(p.at).Seconds())
			}
			n++
		}
	}
	t.pending = t.pending[:copy(t.pending, t.pending[n:])]
}

// PrepareProposal implements replica.StateMachine: the partition's, and
// the proposal's start time for the commit latency.
func (m *replicaMachine) PrepareProposal(p *replica.Proposal, at replica.ProposalPoint) error {
	if err := m.Partition.PrepareProposal(p, at); err != nil {
		return err
	}
	m.timer.proposed(at, m.c.env.Clock.Now())
	return nil
}

// Apply implements replica.StateMachine: the partition's, then the
// commit latency of the proposals it applied.
func (m *replicaMachine) Apply(ents []*raftpb.Entry) error {
	if err := m.Partition.Apply(ents); err != nil {
		return err
	}
	if len(m.timer.pending) > 0 {
		m.timer.applied(ents, m.c.env.Clock.Now())
	}
	return nil
}

// countElectionWon counts l when it makes this replica the ready leader
// of a new term.
func (m *replicaMachine) countElectionWon(before, l replica.Leadership) {
	if l.Ready && l.Leader == m.replicaID && !(before.Ready && before.Term == l.Term) {
		m.c.node.counters.electionsWon.Add(1)
	}
}

// ErrUnhealthy wraps the reason Health finds a node not serving as a
// member of its cluster.
var ErrUnhealthy = errors.New("cluster: node not a caught-up member")

// Health reports whether this node serves as a member of its cluster: on
// a cluster node, its replica is a voter or learner of the metadata group
// as of what it applied, the group has a leader it knows, and it applied
// the metadata log up to the commit index it knows from that leader (so
// topics and leaders it answers are the cluster's, not a stale copy), and
// that replica has not stopped (a failed write or sync, or
// replica.ErrLogLost: its metadata log is damaged, and the node must be
// wiped). A single node is always a member.
func (c *Cluster) Health() error {
	if !c.cfg.clustered() {
		return nil
	}
	var member bool
	var leader, commit, applied uint64
	var stopped error
	err := c.sched.Do(controller.GroupID, func(r *replica.Replica) {
		stopped = r.Err()
		cs, st := r.ConfState(), r.Status()
		id := r.ID()
		member = slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) || slices.Contains(cs.GetLearnersNext(), id)
		leader, commit, applied = st.Lead, st.GetCommit(), r.Applied()
	})
	switch {
	case err != nil:
		return fmt.Errorf("%w: metadata group: %v", ErrUnhealthy, err)
	case errors.Is(stopped, replica.ErrLogLost):
		// What it last saw may still look caught up: a stopped replica
		// hears no heartbeat that would show it behind.
		return fmt.Errorf("%w: this node's metadata replica stopped, its log damaged (wipe the node's data directory): %v", ErrUnhealthy, stopped)
	case stopped != nil:
		// A failed write or sync (a full disk): the cause is the node's
		// to fix, and a restart opens the log again.
		return fmt.Errorf("%w: this node's metadata replica stopped: %v", ErrUnhealthy, stopped)
	case !member:
		return fmt.Errorf("%w: replica %x is not in the metadata group's configuration", ErrUnhealthy, c.replicaID())
	case leader == 0:
		return fmt.Errorf("%w: the metadata group has no leader this node knows", ErrUnhealthy)
	case applied < commit:
		return fmt.Errorf("%w: applied the metadata log to %d of %d committed", ErrUnhealthy, applied, commit)
	}
	return nil
}
