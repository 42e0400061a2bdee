package replica

import "go.etcd.io/raft/v3/raftpb"

// StateMachine is what a group replicates into: the partition, the metadata
// store, or a toy list in tests. Every method runs on the goroutine that
// drives the Replica, from inside its calls.
type StateMachine interface {
	// Apply hands over committed entries that are also locally durable, in
	// index order and without gaps, each exactly once per Replica (a new
	// Replica over the same storage starts again after Config.Applied).
	// Empty and configuration entries are included, so the state machine
	// knows every index it has passed; the Replica applies configuration
	// changes itself. An error fails the Replica for good.
	Apply(ents []*raftpb.Entry) error
	// LeadershipChanged reports every change of (term, leader, ready).
	LeadershipChanged(l Leadership)
	// PrepareProposal runs on a ready leader just before p is proposed, so
	// the state machine can check p against what it has applied and
	// pending, and stamp it (offsets, the term as leader epoch) by setting
	// p.Data. An error refuses the proposal, which is then not proposed.
	PrepareProposal(p *Proposal, at ProposalPoint) error
	// Restore replaces the state by the snapshot's: at start when the
	// storage's snapshot is past Config.Applied, and when the leader sent
	// one, once its write to the storage is durable (in Synced), so a
	// state machine that persists what it restored is never ahead of the
	// log. Entries after it follow through Apply.
	Restore(snap *raftpb.Snapshot) error
}

// Leadership is what a replica knows of its group's leader.
type Leadership struct {
	Term   uint64
	Leader uint64 // 0 when unknown
	// Ready is true on the leader once it has applied its term's first
	// entry: only then has it seen every entry committed before its term,
	// so it may stamp offsets and serve reads (design §3.5).
	Ready bool
}

// LogLoser is a StateMachine told when its replica stops because its log
// lost entries it had acknowledged (ErrLogLost): the state it serves from
// that log cannot be trusted either.
type LogLoser interface {
	LogLost(err error)
}

// Proposal is one command for the group's log.
type Proposal struct {
	Data []byte
}

// ProposalPoint is where a proposal goes: the index its entry gets and the
// term it is proposed in. An entry at Index applied with another Term means
// the proposal was lost (a later leader overwrote it).
type ProposalPoint struct {
	Index, Term uint64
}
