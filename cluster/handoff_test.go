package cluster

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// TestInSyncVoters: a leader hands off only to a voter other than itself
// that is recently active and holds every committed entry; a follower's
// status (no progress) offers none.
func TestInSyncVoters(t *testing.T) {
	commit := uint64(10)
	st := raft.Status{BasicStatus: raft.BasicStatus{ID: 1, HardState: &pb.HardState{Commit: &commit}}}
	st.Progress = map[uint64]tracker.Progress{
		1: {Match: 10, RecentActive: true},                  // itself
		2: {Match: 10, RecentActive: true},                  // in sync
		3: {Match: 9, RecentActive: true},                   // behind
		4: {Match: 10, RecentActive: false},                 // silent
		5: {Match: 10, RecentActive: true, IsLearner: true}, // not a voter
		6: {Match: 12, RecentActive: true},                  // in sync
	}
	if got, want := inSyncVoters(st), []uint64{2, 6}; !slices.Equal(got, want) {
		t.Fatalf("inSyncVoters = %v, want %v", got, want)
	}
	if got := inSyncVoters(raft.Status{BasicStatus: raft.BasicStatus{ID: 2}}); len(got) != 0 {
		t.Fatalf("a follower's status offers %v", got)
	}
}

// TestHandOffTarget: the transferee is the in-sync candidate given the
// fewest groups so far, the preferred one among equals, so a node's
// groups spread over the others.
func TestHandOffTarget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		candidates []uint64
		preferred  []uint64
		given      map[uint64]int
		want       uint64
	}{
		{"none", nil, []uint64{1, 2, 3}, nil, 0},
		{"preferred first", []uint64{2, 3}, []uint64{3, 1, 2}, nil, 3},
		{"not placed last", []uint64{2, 7}, []uint64{7, 1}, nil, 7},
		{"unplaced after placed", []uint64{2, 7}, []uint64{2}, nil, 2},
		{"fewest given", []uint64{2, 3}, []uint64{3, 2}, map[uint64]int{3: 1}, 2},
		{"equal given: preferred", []uint64{2, 3}, []uint64{3, 2}, map[uint64]int{2: 1, 3: 1}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := handOffTarget(preferredOrder(tc.candidates, tc.preferred), tc.given); got != tc.want {
				t.Fatalf("handOffTarget = %d, want %d", got, tc.want)
			}
		})
	}
}
