package replica

import (
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Data: []byte(data)}
}

// logOf reads back every entry of s as "index/term/data" strings.
func logOf(t *testing.T, s raft.Storage) []string {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last < first {
		return nil
	}
	ents, err := s.Entries(first, last+1, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, string(e.Data)+"@"+string(rune('0'+e.GetTerm())))
	}
	return out
}

// TestMemStorageMatchesMemoryStorage appends random runs, overlapping the
// end with conflicting suffixes, to a MemStorage and to raft's
// MemoryStorage and compares every read answer.
func TestMemStorageMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		mine, ref := NewMemStorage(), raft.NewMemoryStorage()
		term := uint64(1)
		for step := range 40 {
			last, _ := ref.LastIndex()
			first := uint64(1) + rng.Uint64N(last+1)
			if rng.IntN(3) == 0 {
				term++
			}
			var ents []*raftpb.Entry
			for i := range rng.Uint64N(4) + 1 {
				ents = append(ents, ent(first+i, term, string(rune('a'+step%26))))
			}
			if err := ref.Append(ents); err != nil {
				t.Fatal(err)
			}
			if err := mine.Append(ents); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			compareStorages(t, mine, ref)
		}
	}
}

func compareStorages(t *testing.T, mine *MemStorage, ref *raft.MemoryStorage) {
	t.Helper()
	f1, _ := mine.FirstIndex()
	f2, _ := ref.FirstIndex()
	l1, _ := mine.LastIndex()
	l2, _ := ref.LastIndex()
	if f1 != f2 || l1 != l2 {
		t.Fatalf("bounds [%d,%d], MemoryStorage [%d,%d]", f1, l1, f2, l2)
	}
	for i := f1 - 1; i <= l1+1; i++ {
		a, errA := mine.Term(i)
		b, errB := ref.Term(i)
		if a != b || errA != errB {
			t.Fatalf("Term(%d) = %d, %v; MemoryStorage %d, %v", i, a, errA, b, errB)
		}
	}
	for lo := f1; lo <= l1; lo++ {
		for _, size := range []uint64{0, 5, ^uint64(0)} {
			a, errA := mine.Entries(lo, l1+1, size)
			b, errB := ref.Entries(lo, l1+1, size)
			if errA != errB || len(a) != len(b) {
				t.Fatalf("Entries(%d, %d, %d): %d entries, %v; MemoryStorage %d, %v", lo, l1+1, size, len(a), errA, len(b), errB)
			}
			for i := range a {
				if !proto.Equal(a[i], b[i]) {
					t.Fatalf("Entries(%d): entry %d differs", lo, i)
				}
			}
		}
	}
}

// TestMemStorageCrash keeps only what a completed Sync covered: entries,
// hard state and snapshot written after it are gone, and a failed Sync
// covers nothing.
func TestMemStorageCrash(t *testing.T) {
	s := NewBootstrapStorage([]uint64{1, 2, 3})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Append([]*raftpb.Entry{ent(2, 1, "a"), ent(3, 1, "b")}))
	must(s.SetHardState(&raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(2))}))
	must(s.Sync())
	// Written but not synced: a conflicting suffix and a new term.
	must(s.Append([]*raftpb.Entry{ent(3, 2, "c"), ent(4, 2, "d")}))
	must(s.SetHardState(&raftpb.HardState{Term: new(uint64(2)), Vote: new(uint64(2)), Commit: new(uint64(3))}))
	if got := logOf(t, s); len(got) != 3 || got[1] != "c@2" {
		t.Fatalf("written log %v, want a@1 c@2 d@2", got)
	}
	s.Crash()
	if got := logOf(t, s); len(got) != 2 || got[0] != "a@1" || got[1] != "b@1" {
		t.Fatalf("after crash %v, want a@1 b@1", got)
	}
	hs, cs, _ := s.InitialState()
	if hs.GetTerm() != 1 || hs.GetVote() != 1 || hs.GetCommit() != 2 {
		t.Fatalf("hard state after crash %v, want term 1 vote 1 commit 2", hs)
	}
	if len(cs.GetVoters()) != 3 {
		t.Fatalf("conf state after crash %v, want the bootstrap voters", cs)
	}
	// A snapshot applied but not synced goes too.
	must(s.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}))
	s.FailSyncs()
	if err := s.Sync(); err != ErrSyncFailed {
		t.Fatalf("Sync after FailSyncs = %v", err)
	}
	s.Crash()
	if first, _ := s.FirstIndex(); first != 2 {
		t.Fatalf("first index %d after crash, want 2 (the unsynced snapshot is lost)", first)
	}
	if s.Syncs() != 1 {
		t.Fatalf("%d completed syncs, want 1", s.Syncs())
	}
}

// TestMemStorageSnapshot compacts the log below a created snapshot and
// refuses an older one.
func TestMemStorageSnapshot(t *testing.T) {
	s := NewBootstrapStorage([]uint64{1})
	if err := s.Append([]*raftpb.Entry{ent(2, 1, "a"), ent(3, 2, "b"), ent(4, 2, "c")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSnapshot(3, &raftpb.ConfState{Voters: []uint64{1}}, []byte("state")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Term(2); err != raft.ErrCompacted {
		t.Fatalf("Term(2) after compaction: %v", err)
	}
	if term, _ := s.Term(3); term != 2 {
		t.Fatalf("Term(3) = %d, want 2", term)
	}
	if got := logOf(t, s); len(got) != 1 || got[0] != "c@2" {
		t.Fatalf("log after snapshot %v", got)
	}
	old := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(2)), Term: new(uint64(1))}}
	if err := s.ApplySnapshot(old); err == nil {
		t.Fatal("ApplySnapshot of an older snapshot succeeded")
	}
}
