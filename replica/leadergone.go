package replica

import (
	"slices"

	"go.etcd.io/raft/v3"
)

// Fast failover (issue 12): with PreVote and CheckQuorum a follower that
// heard from its leader within the election timeout ignores (pre)votes, and
// a follower starts an election only after a randomised timeout, so a dead
// leader is replaced one to two election timeouts after it died. When the
// node's transport knows the leader's process is gone (its connection
// closed and a new dial was refused), the survivors need not wait:
//
//   - every follower whose leader is gone forgets it (raft's ForgetLeader):
//     a leaderless follower is out of the lease and grants a pre-vote to an
//     up-to-date candidate at once;
//   - the lowest voter whose node is not gone campaigns at once. Only one
//     does: two pre-candidates grant each other's pre-vote, then split the
//     vote and wait a randomised timeout;
//   - the campaigner repeats its pre-vote at each tick while it has no
//     leader, for one election timeout, because the other survivors may
//     learn of the loss after its first pre-vote reached them (ignored
//     there while in the lease); after an election timeout their lease has
//     expired anyway.
//
// Safety stays raft's: this only starts an election earlier. A leader that
// is in fact alive gets its followers back at its next heartbeat, and its
// followers that did not forget it ignore the campaigner. A campaigner
// whose log is behind is refused, and the ordinary election timeout elects
// another survivor.

// LeaderGone tells the replica that the processes of the replicas for
// which gone is true have ended. A follower whose leader is among them
// forgets it, and campaigns when it is the lowest voter not gone; it
// returns whether it campaigned.
func (r *Replica) LeaderGone(gone func(replicaID uint64) bool) (campaigned bool) {
	defer func() {
		if r.lost(recover()) {
			campaigned = false
		}
	}()
	if r.err != nil {
		return false
	}
	st := r.rn.Status()
	if st.RaftState != raft.StateFollower || st.Lead == raft.None || !gone(st.Lead) {
		return false
	}
	// A ReadOnlySafe group (raftConfig) always accepts ForgetLeader; a
	// follower never fails it.
	_ = r.rn.ForgetLeader()
	voters := st.Config.Voters.IDs()
	var survivors []uint64
	for id := range voters {
		if !gone(id) {
			survivors = append(survivors, id)
		}
	}
	if len(survivors) == 0 || slices.Min(survivors) != r.id {
		return false
	}
	r.campaignTicksLeft = r.electionTicks
	_ = r.rn.Campaign() // a voter's campaign never fails
	return true
}

// retryCampaign, at a tick, repeats the pre-vote of a campaign LeaderGone
// started while the replica still has no leader.
func (r *Replica) retryCampaign() {
	if r.campaignTicksLeft == 0 {
		return
	}
	r.campaignTicksLeft--
	st := r.rn.BasicStatus()
	switch {
	case st.Lead != raft.None || st.RaftState == raft.StateLeader:
		r.campaignTicksLeft = 0
	case st.RaftState == raft.StatePreCandidate || st.RaftState == raft.StateFollower:
		// A candidate (past the pre-vote) would start a new term: it
		// waits for its votes or its own election timeout instead.
		_ = r.rn.Campaign()
	}
}
