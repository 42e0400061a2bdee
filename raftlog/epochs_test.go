package raftlog

import (
	"errors"
	"fmt"
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

// answer: the largest epoch at or below requested that wrote data (the
// last one known counts anyway), and the start of the first later one
// that did, else the log end.
func (em *epochModel) answer(requested int32, logEnd int64) (int32, int64) {
	counts := func(k int) bool { return em.epochs[k].wrote || k == len(em.epochs)-1 }
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
			return em.epochs[best].epoch, em.epochs[k].start
		}
	}
	return em.epochs[best].epoch, logEnd
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
// ones and IndexAtOffset for every offset around the log with the model.
func checkLookups(t *testing.T, l *Log, m *model, em *epochModel, maxEpoch int32) {
	t.Helper()
	for e := int32(-1); e <= maxEpoch+2; e++ {
		gotEpoch, gotEnd := l.EpochEndOffset(e)
		wantEpoch, wantEnd := em.answer(e, m.end)
		if gotEpoch != wantEpoch || gotEnd != wantEnd {
			t.Fatalf("EpochEndOffset(%d) = %d, %d; want %d, %d (epochs %+v)", e, gotEpoch, gotEnd, wantEpoch, wantEnd, em.epochs)
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
	h := epochHistory(
		[]LegacyEpoch{{0, 0}, {1, 0}, {2, 10}, {4, 20}},
		[]TermStart{{Term: 5, Index: 2, Offset: 20}, {Term: 6, Index: 3, Offset: 20}, {Term: 7, Index: 9, Offset: 35}, {Term: 8, Index: 10, Offset: 35}})
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
