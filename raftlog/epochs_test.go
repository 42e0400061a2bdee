package raftlog

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// epochModel is the brute-force answer: every epoch the log knows with
// its start offset and whether it wrote data.
type epochModel struct {
	epochs []struct {
		epoch int32
		start int64
		wrote bool
	}
}

func (em *epochModel) add(epoch int32, start int64, wrote bool) {
	em.epochs = append(em.epochs, struct {
		epoch int32
		start int64
		wrote bool
	}{epoch, start, wrote})
}

// answer: the largest epoch at or below requested that wrote data below
// limit (the last one known counts anyway), and the start of the first
// later one that did, else the log end, neither past limit.
func (em *epochModel) answer(requested int32, logEnd, limit int64) (int32, int64) {
	counts := func(k int) bool {
		e := em.epochs[k]
		return e.wrote && e.start < limit || k == len(em.epochs)-1
	}
	best := -1
	for k := range em.epochs {
		if counts(k) && em.epochs[k].epoch <= requested {
			best = k
		}
	}
	if best < 0 {
		return -1, -1
	}
	for k := best + 1; k < len(em.epochs); k++ {
		if counts(k) {
			return em.epochs[best].epoch, min(em.epochs[k].start, limit)
		}
	}
	return em.epochs[best].epoch, min(logEnd, limit)
}

// limitsFor returns the limits worth checking: none, around the log's
// start, end and every epoch's start.
func (em *epochModel) limitsFor(m *model) []int64 {
	limits := []int64{math.MaxInt64, 0}
	for _, at := range []int64{m.end} {
		limits = append(limits, at-1, at, at+1)
	}
	for _, e := range em.epochs {
		limits = append(limits, e.start-1, e.start, e.start+1)
	}
	return limits
}

// epochsOf builds the brute-force model of a log that installed a
// snapshot with legacy epochs (below next) and the given term boundary
// (none when boundary is nil), then holds the model's entries.
func epochsOf(legacy []LegacyEpoch, boundary *TermStart, next int64, m *model) *epochModel {
	em := &epochModel{}
	for k, e := range legacy {
		end := next
		if k+1 < len(legacy) {
			end = legacy[k+1].StartOffset
		}
		em.add(e.Epoch, e.StartOffset, e.StartOffset < end)
	}
	wrote := func(term uint64) bool {
		for _, e := range m.ents {
			if e.GetTerm() == term && e.Type == nil && len(e.GetData()) > 0 && e.GetData()[0] < 0x80 {
				return true
			}
		}
		return false
	}
	if boundary != nil {
		em.add(int32(boundary.Term), boundary.Offset, wrote(boundary.Term))
	}
	for k, e := range m.ents {
		if e.Type == nil && len(e.GetData()) == 0 {
			em.add(int32(e.GetTerm()), m.begins[k], wrote(e.GetTerm()))
		}
	}
	return em
}

// checkLookups compares EpochEndOffset for every epoch around the known
// ones, under limits around every epoch start and the log end, and
// IndexAtOffset for every offset around the log with the model.
func checkLookups(t *testing.T, l *Log, m *model, em *epochModel, maxEpoch int32) {
	t.Helper()
	for _, limit := range em.limitsFor(m) {
		for e := int32(-1); e <= maxEpoch+2; e++ {
			gotEpoch, gotEnd := l.EpochEndOffset(e, limit)
			wantEpoch, wantEnd := em.answer(e, m.end, limit)
			if gotEpoch != wantEpoch || gotEnd != wantEnd {
				t.Fatalf("EpochEndOffset(%d, %d) = %d, %d; want %d, %d (epochs %+v, log end %d)",
					e, limit, gotEpoch, gotEnd, wantEpoch, wantEnd, em.epochs, m.end)
			}
		}
	}
	snapNext := m.beginOf(m.snapIndex + 1)
	if len(m.ents) > 0 {
		snapNext = m.begins[0]
	}
	for off := snapNext - 1; off <= m.end+1; off++ {
		var want uint64
		wantErr := raft.ErrUnavailable
		if off < snapNext {
			wantErr = raft.ErrCompacted
		}
		for k, e := range m.ents {
			if h, err := batch.ParseHeader(e.GetData()); err == nil && e.Type == nil && m.begins[k] <= off && off < h.NextOffset() {
				want, wantErr = e.GetIndex(), nil
			}
		}
		got, err := l.IndexAtOffset(off)
		if got != want || !errors.Is(err, wantErr) && !(err == nil && wantErr == nil) {
			t.Fatalf("IndexAtOffset(%d) = %d, %v; want %d, %v", off, got, err, want, wantErr)
		}
	}
}

// TestEpochLookups installs a snapshot carrying random legacy epochs
// (some that wrote nothing) and sometimes its own term boundary, then
// appends random terms, some writing nothing but their empty entry, with
// overridden suffixes, and checks EpochEndOffset and IndexAtOffset
// against the brute-force model after every step and after reopens.
func TestEpochLookups(t *testing.T) {
	for seed := uint64(1); seed <= 24; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 21))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			m := newModel(t)
			var legacy []LegacyEpoch
			epoch, start := int32(rng.IntN(2)), int64(0)
			for range rng.IntN(5) {
				legacy = append(legacy, LegacyEpoch{Epoch: epoch, StartOffset: start})
				epoch += 1 + int32(rng.IntN(3))
				start += int64(rng.IntN(3)) * int64(rng.IntN(40))
			}
			next := start + int64(rng.IntN(30))
			term := uint64(max(epoch, 3))
			var boundary *TermStart
			if rng.IntN(2) == 0 {
				boundary = &TermStart{Term: term, Index: 11, Offset: next}
			}
			desc := &Descriptor{NextOffset: next, LegacyEpochs: legacy}
			if boundary != nil {
				desc.Terms = []TermStart{*boundary}
			}
			snap := snapshotAt(11, term, desc)
			if err := l.ApplySnapshot(snap, 0); err != nil {
				t.Fatal(err)
			}
			m.installed(t, snap, next)
			applied := uint64(11)
			checkLookups(t, l, m, epochsOf(legacy, boundary, next, m), int32(term))
			for round := range 10 {
				first := m.last() + 1
				term++
				if m.last() > applied && rng.IntN(3) == 0 {
					first = applied + 1 + rng.Uint64N(m.last()-applied)
				}
				specs := []spec{{kind: 'e', term: term}}
				if rng.IntN(3) > 0 {
					specs = randomSpecs(rng, term, true)
				}
				ents, begins, end := m.build(t, first, specs)
				if err := l.Append(ents, 0); err != nil {
					t.Fatal(err)
				}
				m.apply(t, ents, begins, end)
				applied += rng.Uint64N(m.last() - applied + 1)
				if err := l.RecordApplied(applied, nil); err != nil {
					t.Fatal(err)
				}
				checkLookups(t, l, m, epochsOf(legacy, boundary, next, m), int32(term))
				if round%3 == 2 {
					if err := l.Checkpoint(); err != nil {
						t.Fatal(err)
					}
					l.Close()
					l = openLog(t, fsys)
					checkLookups(t, l, m, epochsOf(legacy, boundary, next, m), int32(term))
				}
			}
		})
	}
}

// TestEpochHistoryCollapses: the pure merge drops epochs that wrote
// nothing, legacy and Raft alike, and keeps the current one.
func TestEpochHistoryCollapses(t *testing.T) {
	legacy := []LegacyEpoch{{0, 0}, {1, 0}, {2, 10}, {4, 20}}
	terms := []TermStart{{Term: 5, Index: 2, Offset: 20}, {Term: 6, Index: 3, Offset: 20}, {Term: 7, Index: 9, Offset: 35}, {Term: 8, Index: 10, Offset: 35}}
	h := epochHistory(legacy, terms, math.MaxInt64)
	want := []LegacyEpoch{{1, 0}, {2, 10}, {6, 20}, {8, 35}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", h, want)
	}
	for _, c := range []struct {
		requested, epoch int32
		end              int64
	}{{-1, -1, -1}, {0, -1, -1}, {1, 1, 10}, {3, 2, 20}, {5, 2, 20}, {6, 6, 35}, {7, 6, 35}, {8, 8, 50}, {100, 8, 50}} {
		if epoch, end := endOffsetFor(h, c.requested, 50); epoch != c.epoch || end != c.end {
			t.Errorf("endOffsetFor(%d) = %d, %d; want %d, %d", c.requested, epoch, end, c.epoch, c.end)
		}
	}
}

// TestEpochHistoryBelowLimit: below a limit (the high watermark) the
// epochs that wrote only at or past it collapse into the current one,
// and no end goes past the limit.
func TestEpochHistoryBelowLimit(t *testing.T) {
	legacy := []LegacyEpoch{{1, 0}, {2, 10}}
	terms := []TermStart{{Term: 5, Index: 2, Offset: 20}, {Term: 7, Index: 9, Offset: 35}}
	const logEnd = 50
	for _, c := range []struct {
		limit            int64
		requested, epoch int32
		end              int64
		history          string
	}{
		{math.MaxInt64, 5, 5, 35, "[{1 0} {2 10} {5 20} {7 35}]"},
		{50, 7, 7, 50, "[{1 0} {2 10} {5 20} {7 35}]"},
		{40, 7, 7, 40, "[{1 0} {2 10} {5 20} {7 35}]"},
		{40, 5, 5, 35, "[{1 0} {2 10} {5 20} {7 35}]"},
		{35, 5, 5, 35, "[{1 0} {2 10} {5 20} {7 35}]"},
		{30, 5, 5, 30, "[{1 0} {2 10} {5 20} {7 30}]"},
		{30, 7, 7, 30, "[{1 0} {2 10} {5 20} {7 30}]"},
		{20, 5, 2, 20, "[{1 0} {2 10} {7 20}]"},
		{20, 8, 7, 20, "[{1 0} {2 10} {7 20}]"},
		{10, 2, 1, 10, "[{1 0} {7 10}]"},
		{0, 1, -1, -1, "[{7 0}]"},
		{0, 7, 7, 0, "[{7 0}]"},
	} {
		h := epochHistory(legacy, terms, c.limit)
		if got := fmt.Sprint(h); got != c.history {
			t.Errorf("below %d: history %s, want %s", c.limit, got, c.history)
		}
		if epoch, end := endOffsetFor(h, c.requested, min(logEnd, c.limit)); epoch != c.epoch || end != c.end {
			t.Errorf("below %d: endOffsetFor(%d) = %d, %d; want %d, %d", c.limit, c.requested, epoch, end, c.epoch, c.end)
		}
	}
}

// TestTermEpochs: the epochs a read of [from, to) checks its batches
// against are the boundaries that own data there, a term that wrote none
// (the next starts at the same offset) left out, from the last at or
// below from (or the first, from below them all).
func TestTermEpochs(t *testing.T) {
	terms := []TermStart{{Term: 5, Index: 2, Offset: 20}, {Term: 6, Index: 3, Offset: 20}, {Term: 7, Index: 9, Offset: 35}, {Term: 8, Index: 10, Offset: 35}, {Term: 9, Index: 12, Offset: 40}}
	for _, c := range []struct {
		from, to int64
		want     string
	}{
		{0, 10, "[{6 20}]"},
		{0, 21, "[{6 20}]"},
		{0, 36, "[{6 20} {8 35}]"},
		{20, 35, "[{6 20}]"},
		{25, 50, "[{6 20} {8 35} {9 40}]"},
		{35, 40, "[{8 35}]"},
		{39, 41, "[{8 35} {9 40}]"},
		{45, 60, "[{9 40}]"},
	} {
		if got := fmt.Sprint(termEpochs(terms, c.from, c.to)); got != c.want {
			t.Errorf("termEpochs(%d, %d) = %s, want %s", c.from, c.to, got, c.want)
		}
	}
	if got := termEpochs(nil, 0, 10); got != nil {
		t.Errorf("no boundaries: %v", got)
	}
}
