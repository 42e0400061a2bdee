package raftlog

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage/vfs"
)

var (
	crashSeeds = flag.Int("seeds", 150, "number of seeds TestCrashRecovery runs")
	crashSeed  = flag.Int64("seed", -1, "run TestCrashRecovery for this seed only")
)

// TestCrashRecovery runs random workloads of appends (overriding
// suffixes), hard state changes, applied indexes, syncs, checkpoints,
// compactions (dropping the segments below), installed snapshots of every
// kind, raft-meta rewrites (every other seed) and reopens on a crash-simulating filesystem, cuts the
// power at a random filesystem call (torn writes included), reopens, and
// checks that:
//   - Open succeeds: a crash is never reported as corruption;
//   - the log is a prefix of a log the workload built, holding every
//     entry a completed Sync or Checkpoint covered (unless a later
//     conflict overrode it), entries and terms byte for byte;
//   - term and vote are those of the last completed Sync (or install),
//     or of the one the crash interrupted; the compaction point that of
//     the last completed Compact or install or of the interrupted one, and
//     an interrupted install that landed leaves nothing above it and the
//     segments at its next offset; the commit index between the snapshot
//     and the last entry;
//   - the recovered log takes appends and reopens again.
//
// Reproduce one seed with: go test ./raftlog -run TestCrashRecovery -seed=N
// Run more with -seeds=N.
func TestCrashRecovery(t *testing.T) {
	first, count := uint64(0), uint64(*crashSeeds)
	if *crashSeed >= 0 {
		first, count = uint64(*crashSeed), 1
	}
	for seed := first; seed < first+count; seed++ {
		if err := runCrashSeed(t, seed); err != nil {
			t.Fatalf("seed %d: %v\nreproduce: go test ./raftlog -run TestCrashRecovery -seed=%d", seed, err, seed)
		}
	}
}

// hardState is the part of raft's hard state raft-state keeps.
type hardState struct{ term, vote uint64 }

// crashRun is what the workload knows: the model of the log, the logs it
// built before overriding a suffix, the durable floor and hard states.
type crashRun struct {
	t   *testing.T
	rng *rand.Rand
	m   *model
	// before are the logs as they were before each suffix override: a
	// crash inside a truncation may recover a prefix of one of them.
	before [][]*raftpb.Entry
	// appending is the log an Append the crash interrupted was building.
	appending []*raftpb.Entry
	// floor: entries up to it were covered by a completed Sync and not
	// overridden since.
	floor   uint64
	applied uint64
	// compacted is the point of the last completed Compact, compacting
	// that of the last one started.
	compacted, compacting uint64
	term                  uint64
	hs                    hardState
	// synced is the hard state of the last completed Sync; inFlight that
	// of the Sync the crash interrupted, if any.
	synced, inFlight hardState
	// installing is the snapshot of an install under way (nil when none)
	// and installNext the offset the log goes on at after it.
	installing  *raftpb.Snapshot
	installNext int64
}

func runCrashSeed(t *testing.T, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	if seed%2 == 0 {
		// Half the seeds rewrite raft-meta at almost every checkpoint.
		rewriteBytes, interval, ratio := metaRewriteBytes, anchorIntervalBytes, metaRewriteRatio
		metaRewriteBytes, anchorIntervalBytes, metaRewriteRatio = 256, 2<<10, 1
		defer func() { metaRewriteBytes, anchorIntervalBytes, metaRewriteRatio = rewriteBytes, interval, ratio }()
	}
	base := vfs.NewCrashFS()
	created := createLog(t, base)
	created.Close()
	cfs := vfs.NewPowerCutFS(base, 1+rng.IntN(250), vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, 1)), TearUnsynced: true})
	hs := hardState{term: testBoot.Term}
	w := &crashRun{t: t, rng: rng, m: newModel(t), floor: testBoot.Index, applied: testBoot.Index, term: testBoot.Term,
		hs: hs, synced: hs, inFlight: hs, compacted: testBoot.Index, compacting: testBoot.Index}
	if err := w.run(cfs); err != nil {
		return err
	}
	return w.check(cfs.Crash())
}

// run applies random operations until one fails (the power cut) or the
// workload ends. Any failure other than the cut is a test failure.
func (w *crashRun) run(cfs *vfs.PowerCutFS) error {
	l, err := Open(cfs, "p", testCfg, 0)
	if err != nil {
		return w.cut(err)
	}
	defer func() {
		if l != nil {
			l.Close()
		}
	}()
	for range 40 {
		switch op := w.rng.IntN(21); {
		case op < 9:
			err = w.appendSome(l)
		case op < 13:
			err = w.sync(l.Sync)
		case op < 15:
			err = w.sync(l.Checkpoint)
		case op < 17:
			w.hs = hardState{term: w.term, vote: uint64(1 + w.rng.IntN(3))}
			err = l.SetHardState(&raftpb.HardState{Term: proto.Uint64(w.hs.term), Vote: proto.Uint64(w.hs.vote)})
		case op < 18:
			if w.floor > w.applied {
				w.applied += 1 + w.rng.Uint64N(w.floor-w.applied)
				err = l.RecordApplied(w.applied, nil)
			}
		case op < 19:
			err = w.compact(l)
		case op < 20:
			err = w.install(l)
		default:
			// A reopen forgets a hard state set and not synced, and an
			// applied index not checkpointed, as a restart does.
			w.hs = w.synced
			l.Close()
			if l, err = Open(cfs, "p", testCfg, 0); err == nil {
				if last, _ := l.LastIndex(); last != w.m.last() {
					return fmt.Errorf("reopened without a crash up to %d, appended up to %d", last, w.m.last())
				}
				hs, _, _ := l.InitialState()
				if w.applied = hs.GetCommit(); w.applied < w.compacted {
					return fmt.Errorf("reopened with applied index %d below the compaction point %d", w.applied, w.compacted)
				}
			}
		}
		if err != nil {
			return w.cut(err)
		}
	}
	return nil
}

// cut accepts err only as the power cut ending the workload.
func (w *crashRun) cut(err error) error {
	if errors.Is(err, vfs.ErrPowerCut) {
		return nil
	}
	return fmt.Errorf("workload: %w", err)
}

// appendSome appends entries of the current leader, or of a new one that
// may override a suffix above the applied index.
func (w *crashRun) appendSome(l *Log) error {
	// A held install may leave the log ending in an older term than the
	// leader's: its entries then start with a new term too.
	newTerm := w.rng.IntN(4) == 0 || w.term == testBoot.Term || w.m.termAt(w.m.last()) != w.term
	first := w.m.last() + 1
	if newTerm {
		w.term++
		if w.m.last() > w.applied && w.rng.IntN(2) == 0 {
			first = w.applied + 1 + w.rng.Uint64N(w.m.last()-w.applied)
		}
	}
	// A conflict lies above the commit index, so above the applied index
	// and compaction point, even when a restart forgot the applied index.
	first = max(first, w.compacted+1)
	ents, begins, end := w.m.build(w.t, first, randomSpecs(w.rng, w.term, newTerm))
	if first <= w.m.last() {
		w.before = append(w.before, slices.Clone(w.m.ents))
		w.floor = min(w.floor, first-1)
	}
	keep := first - w.m.snapIndex - 1
	w.appending = append(slices.Clone(w.m.ents[:keep]), ents...)
	if err := l.Append(ents, 0); err != nil {
		return err
	}
	w.m.apply(w.t, ents, begins, end)
	return nil
}

// compact moves the compaction point up to the applied index and drops
// the segments below it, as retention would.
func (w *crashRun) compact(l *Log) error {
	if w.applied <= w.compacted {
		return nil
	}
	at := w.compacted + 1 + w.rng.Uint64N(w.applied-w.compacted)
	w.compacting = at
	if err := l.Compact(at, nil); err != nil {
		return err
	}
	w.compacted = at
	for {
		segs := l.storage.Segments()
		if segs[0].Active || segs[0].NextOffset > w.m.beginOf(at+1) {
			return nil
		}
		if err := l.storage.DeleteOldestSegment(0); err != nil {
			return err
		}
	}
}

// install applies a snapshot of a random kind above the applied index. It
// cuts the entries above the snapshot (when the log holds it) or above the
// applied index, as an override does, and writes raft-state, as a Sync
// does.
func (w *crashRun) install(l *Log) error {
	kind := snapshotKind(w.rng.IntN(4))
	term := w.term
	if kind == snapConflict || kind == snapPastEnd {
		term++
	}
	snap, next := randomSnapshot(w.rng, w.m, kind, w.applied, term)
	if snap == nil {
		return nil
	}
	idx := snap.GetMetadata().GetIndex()
	cut := w.applied
	if kind == snapHeld || kind == snapHeldLast {
		cut = idx
	}
	if cut < w.m.last() {
		w.before = append(w.before, slices.Clone(w.m.ents))
		w.floor = min(w.floor, cut)
	}
	w.installing, w.installNext, w.compacting, w.inFlight = snap, next, idx, w.hs
	if err := l.ApplySnapshot(snap, 0); err != nil {
		return err
	}
	w.m.installed(w.t, snap, next)
	w.before, w.appending, w.installing = nil, nil, nil
	w.floor, w.applied, w.compacted, w.synced, w.term = idx, idx, idx, w.hs, term
	return nil
}

// sync runs a Sync or Checkpoint and moves the floor when it completes.
func (w *crashRun) sync(f func() error) error {
	target, hs := w.m.last(), w.hs
	w.inFlight = hs
	if err := f(); err != nil {
		return err
	}
	w.floor, w.synced = target, hs
	return nil
}

// check opens what the crash left and compares it with what the workload
// may have left.
func (w *crashRun) check(after *vfs.CrashFS) error {
	l, err := Open(after, "p", testCfg, 0)
	if err != nil {
		return fmt.Errorf("open after the crash: %w", err)
	}
	defer l.Close()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if last < w.floor {
		return fmt.Errorf("recovered up to entry %d, a completed sync covered %d", last, w.floor)
	}
	if point := first - 1; point != w.compacted && point != w.compacting {
		return fmt.Errorf("compacted up to %d, want %d (done) or %d (in flight)", point, w.compacted, w.compacting)
	}
	if w.installing != nil && first-1 == w.installing.GetMetadata().GetIndex() {
		if last != first-1 || l.storage.NextOffset() != w.installNext {
			return fmt.Errorf("the interrupted install at %d landed with entries up to %d, offsets up to %d (want %d)",
				first-1, last, l.storage.NextOffset(), w.installNext)
		}
		return appendAfter(l, after, nil)
	}
	var got []*raftpb.Entry
	if last >= first {
		if got, err = l.Entries(first, last+1, 1<<62); err != nil {
			return fmt.Errorf("entries after the crash: %w", err)
		}
	}
	if !w.isPrefix(first, got) {
		return fmt.Errorf("recovered %s, a prefix of no log built (now %s)", show(got), show(w.m.ents))
	}
	for _, e := range got {
		if term, err := l.Term(e.GetIndex()); err != nil || term != e.GetTerm() {
			return fmt.Errorf("Term(%d) = %d, %v; want %d", e.GetIndex(), term, err, e.GetTerm())
		}
	}
	hs, _, err := l.InitialState()
	if err != nil {
		return err
	}
	if h := (hardState{hs.GetTerm(), hs.GetVote()}); h != w.synced && h != w.inFlight {
		return fmt.Errorf("hard state %+v, want %+v (synced) or %+v (in flight)", h, w.synced, w.inFlight)
	}
	if hs.GetCommit() > last || hs.GetCommit() < first-1 {
		return fmt.Errorf("commit %d outside [%d, %d], the snapshot and the last entry", hs.GetCommit(), first-1, last)
	}
	return appendAfter(l, after, got)
}

// isPrefix reports whether ents, from index first on, are a prefix of
// what the log held from there, of what one it had before an override
// held, or of what the Append the crash interrupted was building.
func (w *crashRun) isPrefix(first uint64, ents []*raftpb.Entry) bool {
	skip := int(first - w.m.snapIndex - 1)
	for _, log := range append(slices.Clone(w.before), w.m.ents, w.appending) {
		if skip+len(ents) <= len(log) && sameEntries(ents, log[skip:skip+len(ents)]) {
			return true
		}
	}
	return false
}

// appendAfter checks that the recovered log takes a new leader's entries
// and keeps them, and what it had, across a reopen.
func appendAfter(l *Log, fsys vfs.FS, kept []*raftpb.Entry) error {
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	begin, err := l.OffsetOf(last + 1)
	if err != nil {
		return err
	}
	hs, _, _ := l.InitialState()
	lastTerm, _ := l.Term(last)
	term := max(hs.GetTerm(), lastTerm) + 1
	data := &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(last + 2)}
	if data.Data, err = stampedBatchErr(begin, spec{term: term, records: 2, valueBytes: 20}); err != nil {
		return err
	}
	ents := []*raftpb.Entry{{Term: proto.Uint64(term), Index: proto.Uint64(last + 1)}, data}
	if err := l.Append(ents, 0); err != nil {
		return fmt.Errorf("append after recovery: %w", err)
	}
	if err := l.Sync(); err != nil {
		return err
	}
	l.Close()
	again, err := Open(fsys, "p", testCfg, 0)
	if err != nil {
		return fmt.Errorf("reopen after recovery: %w", err)
	}
	defer again.Close()
	want := append(slices.Clone(kept), ents...)
	got, err := again.Entries(first, last+3, 1<<62)
	if err != nil || !sameEntries(got, want) {
		return fmt.Errorf("reopened with %s, %v; want %s", show(got), err, show(want))
	}
	return nil
}
