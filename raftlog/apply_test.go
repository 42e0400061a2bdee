package raftlog

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage/vfs"
)

// installed records an applied snapshot in the model: MemoryStorage drops
// every entry, and the log goes on at next.
func (m *model) installed(t testing.TB, snap *raftpb.Snapshot, next int64) {
	t.Helper()
	if err := m.mem.ApplySnapshot(proto.Clone(snap).(*raftpb.Snapshot)); err != nil {
		t.Fatal(err)
	}
	m.snapIndex, m.snapTerm = snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	m.ents, m.begins, m.end = nil, nil, next
}

// snapshotAt is a raft snapshot at index, term with a new ConfState and,
// when desc is not nil, its descriptor as Data.
func snapshotAt(index, term uint64, desc *Descriptor) *raftpb.Snapshot {
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term),
		ConfState: &raftpb.ConfState{Voters: []uint64{index, index + 1}}}}
	if desc != nil {
		snap.Data = EncodeDescriptor(*desc)
	}
	return snap
}

// snapshotKind is which of ApplySnapshot's cases a round exercises.
type snapshotKind int

const (
	snapHeld     snapshotKind = iota // the log holds the snapshot's entry
	snapConflict                     // the log has the index with another term
	snapPastEnd                      // the snapshot is past the last entry
	snapHeldLast                     // the log holds it as its last entry
)

// randomSnapshot picks a snapshot of kind for the log the model holds,
// above applied, and the offset the log goes on at after it. It returns
// nil when the log offers no index for that kind.
func randomSnapshot(rng *rand.Rand, m *model, kind snapshotKind, applied, term uint64) (*raftpb.Snapshot, int64) {
	low := max(applied, m.snapIndex) + 1
	switch kind {
	case snapHeld, snapHeldLast:
		if m.last() < low {
			return nil, 0
		}
		idx := low + rng.Uint64N(m.last()-low+1)
		if kind == snapHeldLast {
			idx = m.last()
		}
		next := m.beginOf(idx + 1)
		var desc *Descriptor
		if rng.IntN(2) == 0 {
			desc = &Descriptor{NextOffset: next}
		}
		return snapshotAt(idx, m.termAt(idx), desc), next
	case snapConflict:
		if m.last() < low {
			return nil, 0
		}
		idx := low + rng.Uint64N(m.last()-low+1)
		next := m.beginOf(applied+1) + rng.Int64N(300)
		desc := &Descriptor{LogStartOffset: rng.Int64N(next + 1), NextOffset: next,
			Terms: []TermStart{{Term: term, Index: idx - rng.Uint64N(idx-low+1), Offset: next}}}
		return snapshotAt(idx, term, desc), next
	default:
		idx := m.last() + 1 + rng.Uint64N(5)
		next := m.end + rng.Int64N(2000)
		return snapshotAt(idx, term, &Descriptor{NextOffset: next}), next
	}
}

// TestApplySnapshotConformance appends with overridden suffixes, applies
// some entries and installs snapshots of each kind (held, conflicting,
// past the end; with and without a descriptor where allowed), and after
// each step and after a reopen every answer is MemoryStorage's; the
// segments go on at the snapshot's next offset and take appends there.
func TestApplySnapshotConformance(t *testing.T) {
	var installs [3]int
	defer func() {
		if installs[snapHeld] == 0 || installs[snapConflict] == 0 || installs[snapPastEnd] == 0 {
			t.Errorf("snapshots installed per kind: %v, want each kind", installs)
		}
	}()
	for seed := uint64(1); seed <= 16; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 13))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			m := newModel(t)
			term, applied := testBoot.Term, testBoot.Index
			for round := range 10 {
				newTerm := round == 0 || rng.IntN(3) == 0
				term = appendRandom(t, l, m, rng, term, applied, newTerm, 0)
				applied += rng.Uint64N(m.last() - applied + 1)
				if err := l.RecordApplied(applied, nil); err != nil {
					t.Fatal(err)
				}
				kind := snapshotKind(rng.IntN(3))
				snapTerm := term
				if kind != snapHeld {
					snapTerm++ // a leader of a later term sent it
				}
				snap, next := randomSnapshot(rng, m, kind, applied, snapTerm)
				if snap == nil {
					continue
				}
				term = snapTerm
				if err := l.ApplySnapshot(snap, 0); err != nil {
					t.Fatalf("round %d: ApplySnapshot(%v) of kind %d: %v", round, snap.GetMetadata(), kind, err)
				}
				m.installed(t, snap, next)
				installs[kind]++
				applied = snap.GetMetadata().GetIndex()
				matches(t, l, m)
				if kind != snapHeld && (l.storage.StartOffset() != next || l.storage.NextOffset() != next) {
					t.Fatalf("segments hold [%d, %d), want them empty at %d", l.storage.StartOffset(), l.storage.NextOffset(), next)
				}
				checkInstalledState(t, l, snap)
				l.Close()
				l = openLog(t, fsys)
				matches(t, l, m)
				checkInstalledState(t, l, snap)
			}
		})
	}
}

// checkInstalledState checks that the applied index (the commit at
// restart) and the ConfState are the installed snapshot's.
func checkInstalledState(t *testing.T, l *Log, snap *raftpb.Snapshot) {
	t.Helper()
	hs, cs, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetCommit() != snap.GetMetadata().GetIndex() || cs.Equivalent(snap.GetMetadata().GetConfState()) != nil {
		t.Fatalf("InitialState = %v, %v after the snapshot %v", hs, cs, snap.GetMetadata())
	}
}

// TestApplySnapshotRefuses: a snapshot at or below the log's is
// raft.ErrSnapOutOfDate (as MemoryStorage says), one below the applied
// index, one the log does not hold without a descriptor, and one whose
// descriptor contradicts the log are refused, and the log is unchanged
// and writable.
func TestApplySnapshotRefuses(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	defer l.Close()
	m := newModel(t)
	ents, begins, end := m.build(t, 11, mixedSpecs)
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.RecordApplied(13, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		snap *raftpb.Snapshot
		want error
	}{
		{"at the snapshot", snapshotAt(testBoot.Index, testBoot.Term, nil), raft.ErrSnapOutOfDate},
		{"below the snapshot", snapshotAt(testBoot.Index-1, testBoot.Term, nil), raft.ErrSnapOutOfDate},
		{"below the applied index", snapshotAt(12, m.termAt(12), nil), nil},
		{"not held, no descriptor", snapshotAt(m.last()+1, 9, nil), nil},
		{"held, another next offset", snapshotAt(14, m.termAt(14), &Descriptor{NextOffset: m.beginOf(15) + 1}), nil},
		{"not held, next offset below the applied data", snapshotAt(14, 9, &Descriptor{NextOffset: m.beginOf(14) - 1}), nil},
		{"damaged descriptor", &raftpb.Snapshot{Data: []byte("no descriptor"), Metadata: snapshotAt(m.last()+1, 9, nil).Metadata}, ErrInvalid},
	}
	for _, c := range cases {
		if wantMem := m.mem.ApplySnapshot(proto.Clone(c.snap).(*raftpb.Snapshot)); c.want == raft.ErrSnapOutOfDate && wantMem != c.want {
			t.Fatalf("%s: MemoryStorage says %v", c.name, wantMem)
		}
		err := l.ApplySnapshot(c.snap, 0)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: ApplySnapshot = %v, want an error wrapping %v", c.name, err, c.want)
		}
	}
	m.mem = newModel(t).mem
	if err := m.mem.Append(m.ents); err != nil {
		t.Fatal(err)
	}
	matches(t, l, m)
	more, begins, end := m.build(t, m.last()+1, []spec{{kind: 'd', term: m.termAt(m.last()), records: 1, valueBytes: 3}})
	if err := l.Append(more, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, more, begins, end)
	matches(t, l, m)
}

// TestApplySnapshotCrash cuts the power at every filesystem call of an
// install, of each kind, with unsynced tails torn on every other budget:
// Open succeeds and gives either the old log (possibly cut above the
// applied index, which raft fills again) or the installed snapshot with
// nothing above it and the segments at its next offset; either way the
// log takes appends and reopens the same.
func TestApplySnapshotCrash(t *testing.T) {
	for _, kind := range []snapshotKind{snapHeld, snapConflict, snapPastEnd, snapHeldLast} {
		t.Run(fmt.Sprint(kind), func(t *testing.T) {
			for budget := 1; ; budget++ {
				if budget > 300 {
					t.Fatal("the install never completed")
				}
				if crashDuringInstall(t, kind, budget) {
					return
				}
			}
		})
	}
}

// TestApplySnapshotResetKeepsSyncedEntries: a follower installing a
// snapshot it does not hold cuts before the new raft-meta only the entries
// reaching past the descriptor's next offset (a suffix the leader's log
// does not hold, so never committed): a power cut at any call leaves every
// other synced entry (committed ones among them, which the replica
// acknowledged), or the installed snapshot. Cutting every entry above the
// applied index first, as the install once did, left the replica without
// entries it had acknowledged.
func TestApplySnapshotResetKeepsSyncedEntries(t *testing.T) {
	cases := []struct {
		name string
		// next picks the descriptor's next offset; keep is the last entry
		// that must survive a power cut before the new raft-meta, besides
		// all of them.
		next func(m *model, applied uint64) (next int64, keep uint64)
	}{
		{"past the end", func(m *model, _ uint64) (int64, uint64) { return m.end + 100, m.last() }},
		{"inside an entry above the applied index", func(m *model, applied uint64) (int64, uint64) {
			// The first entry with data past applied+1: the ones before
			// it end at or below the offset and stay.
			for j := applied + 2; j <= m.last(); j++ {
				if m.beginOf(j+1) > m.beginOf(j)+1 {
					return m.beginOf(j) + 1, j - 1
				}
			}
			t.Fatal("no entry with data above the applied index")
			return 0, 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for budget := 1; ; budget++ {
				if budget > 300 {
					t.Fatal("the install never completed")
				}
				if installAfterSync(t, budget, c.next) {
					return
				}
			}
		})
	}
}

// installAfterSync builds a synced log with entries past the applied
// index, installs a snapshot past its end with the descriptor's next
// offset from next, the power cut at the budget-th call, and checks the
// recovered log. It reports whether the install completed first.
func installAfterSync(t *testing.T, budget int, next func(m *model, applied uint64) (int64, uint64)) bool {
	t.Helper()
	cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
		Rand: rand.New(rand.NewPCG(uint64(budget), 5)), TearUnsynced: budget%2 == 0})
	l, m := logPastApplied(t, cfs)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	nextOffset, keep := next(m, pastApplied)
	idx := m.last() + 2
	snap := snapshotAt(idx, m.termAt(m.last())+1, &Descriptor{NextOffset: nextOffset})
	cfs.CutAfter(budget)
	err := l.ApplySnapshot(snap, 0)
	completed := !cfs.Cut()
	if completed && err != nil {
		t.Fatalf("ApplySnapshot without a crash: %v", err)
	}
	l, err = Open(cfs.Crash(), "p", testCfg, 0)
	if err != nil {
		t.Fatalf("budget %d: open after the crash: %v", budget, err)
	}
	defer l.Close()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	switch {
	case first == idx+1 && last == idx && l.storage.NextOffset() == nextOffset:
	case first == testBoot.Index+1 && !completed:
		got, err := l.Entries(first, last+1, 1<<30)
		if last != m.last() && last != keep || err != nil || !sameEntries(got, m.ents[:last-testBoot.Index]) {
			t.Fatalf("budget %d: the old log holds %s (%v), want %s, or up to entry %d", budget, show(got), err, show(m.ents), keep)
		}
	default:
		t.Fatalf("budget %d (completed %v): recovered entries [%d, %d], segments ending at %d", budget, completed, first, last, l.storage.NextOffset())
	}
	return completed
}

// pastApplied is the applied index of logPastApplied's log.
const pastApplied = 13

// logPastApplied creates a log on fsys holding mixedSpecs from entry 11,
// entries up to pastApplied recorded applied, and returns it with its
// model.
func logPastApplied(t *testing.T, fsys vfs.FS) (*Log, *model) {
	t.Helper()
	l := createLog(t, fsys)
	return l, fillPastApplied(t, l)
}

// fillPastApplied appends mixedSpecs from entry 11 to the new log l and
// records entries up to pastApplied applied; it returns l's model.
func fillPastApplied(t *testing.T, l *Log) *model {
	t.Helper()
	m := newModel(t)
	ents, begins, end := m.build(t, 11, mixedSpecs)
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.RecordApplied(pastApplied, nil); err != nil {
		t.Fatal(err)
	}
	return m
}

// crashDuringInstall builds a synced log with entries past the applied
// index, installs a snapshot of kind with the power cut at the budget-th
// call and checks the recovered log. It reports whether the install
// completed first.
func crashDuringInstall(t *testing.T, kind snapshotKind, budget int) bool {
	t.Helper()
	cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
		Rand: rand.New(rand.NewPCG(uint64(budget), 3)), TearUnsynced: budget%2 == 0})
	l, m := logPastApplied(t, cfs)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// Entries appended and not synced: an install keeping them must make
	// them durable.
	more, begins, end := m.build(t, m.last()+1, []spec{{kind: 'd', term: m.termAt(m.last()), records: 2, valueBytes: 7}, {kind: 'c', term: m.termAt(m.last())}})
	if err := l.Append(more, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, more, begins, end)
	rng := rand.New(rand.NewPCG(uint64(budget), 4))
	term := m.termAt(m.last())
	if kind == snapConflict || kind == snapPastEnd {
		term++
	}
	snap, next := randomSnapshot(rng, m, kind, pastApplied, term)
	idx := snap.GetMetadata().GetIndex()
	cfs.CutAfter(budget)
	err := l.ApplySnapshot(snap, 0)
	completed := !cfs.Cut()
	if completed && err != nil {
		t.Fatalf("ApplySnapshot without a crash: %v", err)
	}
	after := cfs.Crash()
	l, err = Open(after, "p", testCfg, 0)
	if err != nil {
		t.Fatalf("budget %d: open after the crash: %v", budget, err)
	}
	defer func() { l.Close() }()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	switch {
	case first == idx+1:
		if last != idx || l.storage.NextOffset() != next {
			t.Fatalf("budget %d: installed, but the log ends at entry %d, offset %d; want %d, %d", budget, last, l.storage.NextOffset(), idx, next)
		}
		checkInstalledState(t, l, snap)
		m.installed(t, snap, next)
	case first == testBoot.Index+1 && !completed && last >= pastApplied && last <= m.last():
		got, err := l.Entries(first, last+1, 1<<30)
		if err != nil || !sameEntries(got, m.ents[:last-testBoot.Index]) {
			t.Fatalf("budget %d: the old log holds %s (%v), want a prefix of %s", budget, show(got), err, show(m.ents))
		}
		m.mem = newModel(t).mem
		m.apply(t, m.ents[:last-testBoot.Index], m.begins[:last-testBoot.Index], m.beginOf(last+1))
	default:
		t.Fatalf("budget %d (completed %v): recovered entries [%d, %d]", budget, completed, first, last)
	}
	matches(t, l, m)
	more, begins, end = m.build(t, m.last()+1, []spec{{kind: 'e', term: term + 1}, {kind: 'd', term: term + 1, records: 2, valueBytes: 9}})
	if err := l.Append(more, 0); err != nil {
		t.Fatalf("budget %d: append after the crash: %v", budget, err)
	}
	m.apply(t, more, begins, end)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	// What the Sync covered survives another power cut.
	l = openLog(t, after.Crash(vfs.CrashOptions{}))
	matches(t, l, m)
	return completed
}

// TestApplySnapshotConcurrent installs snapshots of every kind between
// appends while a flusher syncs and a reader walks the log (run with
// -race): the reader only ever sees answers or raft's compacted and
// unavailable errors, and the log ends as MemoryStorage says.
func TestApplySnapshotConcurrent(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	stop := make(chan struct{})
	errs := make(chan error, 2)
	loop := func(body func() error) {
		for {
			if err := body(); err != nil {
				errs <- err
				return
			}
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
		}
	}
	go loop(l.Sync)
	go loop(func() error { return readEverything(l) })
	rng := rand.New(rand.NewPCG(5, 5))
	term, applied := testBoot.Term, testBoot.Index
	for round := range 30 {
		term++
		ents, begins, end := m.build(t, m.last()+1, randomSpecs(rng, term, true))
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		m.apply(t, ents, begins, end)
		applied += rng.Uint64N(m.last() - applied + 1)
		if err := l.RecordApplied(applied, nil); err != nil {
			t.Fatal(err)
		}
		kind := snapshotKind(round % 3)
		snapTerm := term
		if kind != snapHeld {
			snapTerm++
		}
		snap, next := randomSnapshot(rng, m, kind, applied, snapTerm)
		if snap == nil {
			continue
		}
		if err := l.ApplySnapshot(snap, 0); err != nil {
			t.Fatal(err)
		}
		m.installed(t, snap, next)
		term, applied = snapTerm, snap.GetMetadata().GetIndex()
	}
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	matches(t, l, m)
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	matches(t, l, m)
}

// readEverything asks every read of the log once, accepting raft's
// compacted and unavailable answers: the log may change in between.
func readEverything(l *Log) error {
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	var errs []error
	if last >= first {
		_, err := l.Entries(first, last+1, 1<<20)
		errs = append(errs, err)
	}
	for i := first - 1; i <= last+1; i++ {
		_, err := l.Term(i)
		errs = append(errs, err)
		_, err = l.OffsetOf(i)
		errs = append(errs, err)
	}
	_, err := l.Snapshot()
	errs = append(errs, err)
	l.EpochEndOffset(int32(last), math.MaxInt64)
	end := l.Segments().NextOffset()
	for off := max(0, end-20); off < end; off++ {
		_, err := l.IndexAtOffset(off)
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, raft.ErrCompacted) && !errors.Is(err, raft.ErrUnavailable) {
			return err
		}
	}
	return nil
}

// TestInstallAfterUnnamedRewrite: a raft-meta rewrite that raft-state
// does not name yet (a crash between the two) is named by the next Open,
// so an install right after it, interrupted the same way, leaves raft-meta
// one generation ahead of raft-state, not two, and the log opens
// installed.
func TestInstallAfterUnnamedRewrite(t *testing.T) {
	withFrequentRewrites(t)
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	term := testBoot.Term
	// rewriteLosingState appends and checkpoints until raft-meta is
	// rewritten, then puts back the raft-state from before: what a crash
	// between the rewrite and the raft-state write leaves.
	rewriteLosingState := func() {
		t.Helper()
		gen := l.metaGeneration
		for range 100 {
			before, err := vfs.ReadFile(fsys, "p/"+stateFileName)
			if err != nil {
				t.Fatal(err)
			}
			// Data only: the anchors checkpoints add are what a rewrite
			// thins.
			specs := []spec{{kind: 'd', term: term, records: 2, valueBytes: 30}}
			if m.last() == testBoot.Index {
				term++
				specs = []spec{{kind: 'e', term: term}}
			}
			ents, begins, end := m.build(t, m.last()+1, specs)
			if err := l.Append(ents, 0); err != nil {
				t.Fatal(err)
			}
			m.apply(t, ents, begins, end)
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if l.metaGeneration != gen {
				if err := vfs.WriteFileAtomic(fsys, "p/"+stateFileName, before); err != nil {
					t.Fatal(err)
				}
				l.Close()
				return
			}
		}
		t.Fatal("raft-meta was never rewritten")
	}
	rewriteLosingState()
	l = openLog(t, fsys)
	before, err := vfs.ReadFile(fsys, "p/"+stateFileName)
	if err != nil {
		t.Fatal(err)
	}
	snap, next := randomSnapshot(rand.New(rand.NewPCG(1, 1)), m, snapPastEnd, m.last(), term+1)
	if err := l.ApplySnapshot(snap, 0); err != nil {
		t.Fatal(err)
	}
	m.installed(t, snap, next)
	l.Close()
	if err := vfs.WriteFileAtomic(fsys, "p/"+stateFileName, before); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, fsys)
	defer l.Close()
	matches(t, l, m)
	checkInstalledState(t, l, snap)
}
