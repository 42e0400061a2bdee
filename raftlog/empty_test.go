package raftlog

import (
	"errors"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage/vfs"
)

func createEmptyLog(t testing.TB, fsys vfs.FS) *Log {
	t.Helper()
	l, err := CreateEmpty(fsys, "p", testCfg, testBoot.GroupID, testBoot.ReplicaID, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// emptyModel is MemoryStorage as raft starts it: nothing at all.
func emptyModel() *model { return &model{mem: raft.NewMemoryStorage()} }

// checkEmpty checks that l answers as a new raft.MemoryStorage does, and
// that its Snapshot asks no state for index 0.
func checkEmpty(t *testing.T, l *Log) {
	t.Helper()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if first != 1 || last != 0 || !l.IsEmpty() {
		t.Fatalf("FirstIndex %d, LastIndex %d, IsEmpty %t; want 1, 0, true", first, last, l.IsEmpty())
	}
	if term, err := l.Term(0); term != 0 || err != nil {
		t.Fatalf("Term(0) = %d, %v; want 0", term, err)
	}
	if _, err := l.Term(1); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(1): %v, want ErrUnavailable", err)
	}
	hs, cs, err := l.InitialState()
	if err != nil || hs.GetTerm() != 0 || hs.GetVote() != 0 || hs.GetCommit() != 0 || len(cs.GetVoters()) != 0 || len(cs.GetLearners()) != 0 {
		t.Fatalf("InitialState = %v, %v, %v; want nothing", hs, cs, err)
	}
	l.SetSnapshotData(func(index uint64) ([]byte, error) {
		return nil, errors.New("asked for the state of an empty log")
	})
	defer l.SetSnapshotData(nil)
	snap, err := l.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 0 || snap.GetMetadata().GetTerm() != 0 {
		t.Fatalf("Snapshot = %v, %v; want index 0", snap, err)
	}
}

// TestCreateEmpty: a log created empty answers as raft's new
// MemoryStorage, reopens empty, and is not created twice.
func TestCreateEmpty(t *testing.T) {
	fsys := vfs.NewMem()
	l := createEmptyLog(t, fsys)
	checkEmpty(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, fsys)
	checkEmpty(t, l)
	l.Close()
	if _, err := CreateEmpty(fsys, "p", testCfg, 7, 1, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateEmpty over a log: %v, want ErrExists", err)
	}
}

// TestCreateEmptyRefusesData: a directory holding batches is no empty log.
func TestCreateEmptyRefusesData(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	ents, _, _ := m.build(t, testBoot.Index+1, []spec{{kind: 'd', term: testBoot.Term, records: 2, valueBytes: 5}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := fsys.Remove("p/" + stateFileName); err != nil {
		t.Fatal(err)
	}
	if l, err := CreateEmpty(fsys, "p", testCfg, 7, 1, 0); err == nil {
		l.Close()
		t.Fatal("CreateEmpty over segments holding batches succeeded")
	}
}

// leaderSnapshot is a snapshot a group's leader sends a new member: past
// entries the member never had, with a descriptor.
func leaderSnapshot() *raftpb.Snapshot {
	return snapshotAt(12, 3, &Descriptor{NextOffset: 40, Terms: []TermStart{{Term: 2, Index: 4, Offset: 10}, {Term: 3, Index: 9, Offset: 31}},
		StateData: []byte("state")})
}

// TestEmptyLogTakesSnapshot: an empty log installs the leader's snapshot,
// then appends after it, and reopens as MemoryStorage says.
func TestEmptyLogTakesSnapshot(t *testing.T) {
	fsys := vfs.NewMem()
	l := createEmptyLog(t, fsys)
	snap := leaderSnapshot()
	if err := l.ApplySnapshot(snap, 0); err != nil {
		t.Fatal(err)
	}
	m := emptyModel()
	m.installed(t, snap, 40)
	checkInstalledState(t, l, snap)
	ents, begins, end := m.build(t, 13, []spec{{kind: 'e', term: 4}, {kind: 'd', term: 4, records: 3, valueBytes: 11}, {kind: 'c', term: 4}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	matches(t, l, m)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	if l.IsEmpty() {
		t.Fatal("IsEmpty after a snapshot")
	}
	matches(t, l, m)
}

// TestEmptyLogAppendsFromFirst: an empty log also takes a leader's
// entries from index 1 (a leader that never compacted).
func TestEmptyLogAppendsFromFirst(t *testing.T) {
	fsys := vfs.NewMem()
	l := createEmptyLog(t, fsys)
	m := emptyModel()
	ents, begins, end := m.build(t, 1, []spec{{kind: 'e', term: 1}, {kind: 'c', term: 1}, {kind: 'd', term: 1, records: 2, valueBytes: 3}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	matches(t, l, m)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	matches(t, l, m)
}

// TestCreateEmptyCrash cuts the power at every step of CreateEmpty and
// then of the first snapshot's install: the directory reopens as no log
// (ErrStateMissing, and CreateEmpty runs again), the empty log, or the
// installed snapshot, never anything else.
func TestCreateEmptyCrash(t *testing.T) {
	for budget := 1; ; budget++ {
		if budget > 200 {
			t.Fatal("create and install never completed")
		}
		if crashEmpty(t, budget) {
			return
		}
	}
}

func crashEmpty(t *testing.T, budget int) bool {
	t.Helper()
	cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
		Rand: rand.New(rand.NewPCG(uint64(budget), 5)), TearUnsynced: budget%2 == 0})
	cfs.CutAfter(budget)
	snap := leaderSnapshot()
	l, err := CreateEmpty(cfs, "p", testCfg, testBoot.GroupID, testBoot.ReplicaID, 0)
	if err == nil {
		err = l.ApplySnapshot(snap, 0)
	}
	completed := !cfs.Cut()
	if completed && err != nil {
		t.Fatalf("without a crash: %v", err)
	}
	after := cfs.Crash()
	l, err = Open(after, "p", testCfg, 0)
	if errors.Is(err, ErrStateMissing) {
		if completed {
			t.Fatalf("budget %d: completed, then no log", budget)
		}
		l = createEmptyLog(t, after)
		checkEmpty(t, l)
		l.Close()
		return false
	}
	if err != nil {
		t.Fatalf("budget %d: open after the crash: %v", budget, err)
	}
	defer l.Close()
	if l.IsEmpty() {
		if completed {
			t.Fatalf("budget %d: completed, then an empty log", budget)
		}
		checkEmpty(t, l)
		// The install goes through after the restart.
		if err := l.ApplySnapshot(proto.Clone(snap).(*raftpb.Snapshot), 0); err != nil {
			t.Fatalf("budget %d: install after the crash: %v", budget, err)
		}
	}
	checkInstalledState(t, l, snap)
	m := emptyModel()
	m.installed(t, snap, 40)
	matches(t, l, m)
	return completed
}
