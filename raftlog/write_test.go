package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

var testCfg = storage.Config{SegmentBytes: 1024, SegmentMs: storage.DefaultSegmentMs, IndexIntervalBytes: 128}

var testBoot = Bootstrap{GroupID: 7, ReplicaID: 1<<20 | 1, Index: 10, Term: 2,
	ConfState: &raftpb.ConfState{Voters: []uint64{1<<20 | 1, 2<<20 | 1, 3<<20 | 1}}}

// model is the log as the tests expect it: raft.MemoryStorage for the
// answers, and the offset each entry begins at.
type model struct {
	mem *raft.MemoryStorage
	// ents are the entries above the snapshot; begins[k] is where ents[k]
	// begins, end the offset after the last.
	ents   []*raftpb.Entry
	begins []int64
	end    int64
	// snapIndex and snapTerm are the snapshot's (the bootstrap's until a
	// snapshot is applied); ents follow it.
	snapIndex, snapTerm uint64
}

// newModel starts the model at the bootstrap snapshot. MemoryStorage
// keeps (and may change) the snapshot it is given, so it gets a copy.
func newModel(t testing.TB) *model {
	t.Helper()
	mem := raft.NewMemoryStorage()
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(testBoot.Index),
		Term: proto.Uint64(testBoot.Term), ConfState: proto.Clone(testBoot.ConfState).(*raftpb.ConfState)}}
	if err := mem.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	return &model{mem: mem, snapIndex: testBoot.Index, snapTerm: testBoot.Term}
}

func (m *model) last() uint64 { return m.snapIndex + uint64(len(m.ents)) }

// termAt is the term of entry i (i at or above the snapshot index).
func (m *model) termAt(i uint64) uint64 {
	if i == m.snapIndex {
		return m.snapTerm
	}
	return m.ents[i-m.snapIndex-1].GetTerm()
}

// beginOf is where entry i begins (the end for the entry after the last).
func (m *model) beginOf(i uint64) int64 {
	if k := i - m.snapIndex - 1; k < uint64(len(m.begins)) {
		return m.begins[k]
	}
	return m.end
}

// build makes the raft entries of specs from index first, as raft and a
// leader make them: data batches stamped with the offset they begin at
// and their term as epoch; only conf changes and no-ops carry a Type.
func (m *model) build(t testing.TB, first uint64, specs []spec) ([]*raftpb.Entry, []int64, int64) {
	t.Helper()
	next := m.beginOf(first)
	var ents []*raftpb.Entry
	var begins []int64
	for k, s := range specs {
		e := &raftpb.Entry{Term: proto.Uint64(s.term), Index: proto.Uint64(first + uint64(k))}
		begins = append(begins, next)
		switch s.kind {
		case 'd':
			e.Data = stampedBatch(t, next, s)
			h, _ := batch.ParseHeader(e.Data)
			next = h.NextOffset()
		case 'c':
			e.Type, e.Data = raftpb.EntryConfChange.Enum(), []byte("conf change")
		case 'v':
			e.Type = raftpb.EntryConfChangeV2.Enum() // an empty one: leaving a joint config
		case 'm':
			e.Data = []byte{0x81, 0, 0, 0, 0, 0, 0, 0, byte(k)}
		case 'n':
			e.Type = raftpb.EntryNormal.Enum()
		}
		ents = append(ents, e)
	}
	return ents, begins, next
}

// apply records ents (with begins and the end they leave) in the model.
func (m *model) apply(t testing.TB, ents []*raftpb.Entry, begins []int64, end int64) {
	t.Helper()
	if err := m.mem.Append(ents); err != nil {
		t.Fatal(err)
	}
	keep := ents[0].GetIndex() - m.snapIndex - 1
	m.ents = append(m.ents[:keep:keep], ents...)
	m.begins = append(m.begins[:keep:keep], begins...)
	m.end = end
}

func stampedBatch(t testing.TB, base int64, s spec) []byte {
	t.Helper()
	whole, err := stampedBatchErr(base, s)
	if err != nil {
		t.Fatal(err)
	}
	return whole
}

// stampedBatchErr is a batch as a leader stamps it: base offset, epoch =
// term.
func stampedBatchErr(base int64, s spec) ([]byte, error) {
	recs := make([]batch.Record, max(1, s.records))
	for i := range recs {
		recs[i] = batch.Record{Offset: base + int64(i), TimestampMs: int64(i), Value: bytes.Repeat([]byte{byte(base)}, s.valueBytes)}
	}
	tmpl := batch.Header{BaseOffset: base, PartitionLeaderEpoch: int32(s.term), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	return batch.Encode(tmpl, int32(len(recs)-1), recs, batch.None)
}

// appendRandom appends random entries to l and m after the last entry,
// or, at a new term, half the time over a random suffix above applied,
// and returns the term it appended at.
func appendRandom(t testing.TB, l *Log, m *model, rng *rand.Rand, term, applied uint64, newTerm bool, nowMs int64) uint64 {
	t.Helper()
	first := m.last() + 1
	if newTerm {
		term++
		if m.last() > applied && rng.IntN(2) == 0 {
			first = applied + 1 + rng.Uint64N(m.last()-applied)
		}
	}
	ents, begins, end := m.build(t, first, randomSpecs(rng, term, newTerm))
	if err := l.Append(ents, nowMs); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	return term
}

// randomSpecs are the entries a leader of term appends next: its empty
// entry first when it is new, then a mixture.
func randomSpecs(rng *rand.Rand, term uint64, newTerm bool) []spec {
	kinds := []byte{'d', 'd', 'd', 'd', 'c', 'v', 'm', 'n'}
	var specs []spec
	if newTerm {
		specs = append(specs, spec{kind: 'e', term: term})
	}
	for range 1 + rng.IntN(6) {
		specs = append(specs, spec{kind: kinds[rng.IntN(len(kinds))], term: term, records: 1 + rng.IntN(4), valueBytes: rng.IntN(300)})
	}
	return specs
}

func createLog(t testing.TB, fsys vfs.FS) *Log {
	t.Helper()
	l, err := Create(fsys, "p", testCfg, testBoot, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func openLog(t testing.TB, fsys vfs.FS) *Log {
	t.Helper()
	l, err := Open(fsys, "p", testCfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// matches compares every answer of l's read side with the model's.
func matches(t *testing.T, l *Log, m *model) {
	t.Helper()
	first, _ := m.mem.FirstIndex()
	last, _ := m.mem.LastIndex()
	if got, _ := l.FirstIndex(); got != first {
		t.Fatalf("FirstIndex = %d, want %d", got, first)
	}
	if got, _ := l.LastIndex(); got != last {
		t.Fatalf("LastIndex = %d, want %d", got, last)
	}
	wantSnap, _ := m.mem.Snapshot()
	if snap, err := l.Snapshot(); err != nil || !proto.Equal(snap.GetMetadata(), wantSnap.GetMetadata()) {
		t.Fatalf("Snapshot = %v, %v; want %v", snap, err, wantSnap)
	}
	for i := first - 1; i <= last+1; i++ {
		wantTerm, wantErr := m.mem.Term(i)
		if term, err := l.Term(i); term != wantTerm || !sameError(err, wantErr) {
			t.Fatalf("Term(%d) = %d, %v; want %d, %v", i, term, err, wantTerm, wantErr)
		}
		if i < first {
			continue
		}
		if off, err := l.OffsetOf(i); err != nil || off != m.beginOf(i) {
			t.Fatalf("OffsetOf(%d) = %d, %v; want %d", i, off, err, m.beginOf(i))
		}
	}
	for lo := first; lo <= last+1; lo++ {
		for _, maxSize := range sizeLimits(m.mem, lo, last+1) {
			want, wantErr := m.mem.Entries(lo, last+1, maxSize)
			got, err := l.Entries(lo, last+1, maxSize)
			if !sameError(err, wantErr) || !sameEntries(got, want) {
				t.Fatalf("Entries(%d, %d, %d) = %s, %v; want %s, %v", lo, last+1, maxSize, show(got), err, show(want), wantErr)
			}
		}
	}
}

func TestCreateOpen(t *testing.T) {
	fsys := vfs.NewMem()
	if _, err := Open(fsys, "p", testCfg, 0); !errors.Is(err, ErrStateMissing) {
		t.Fatalf("Open before Create: %v, want ErrStateMissing", err)
	}
	l := createLog(t, fsys)
	m := newModel(t)
	matches(t, l, m)
	l.Close()
	if _, err := Create(fsys, "p", testCfg, testBoot, 0); !errors.Is(err, ErrExists) {
		t.Fatalf("Create again: %v, want ErrExists", err)
	}
	l = openLog(t, fsys)
	defer l.Close()
	matches(t, l, m)
	hs, cs, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetTerm() != testBoot.Term || hs.GetVote() != 0 || hs.GetCommit() != testBoot.Index || cs.Equivalent(testBoot.ConfState) != nil {
		t.Errorf("InitialState = %v, %v", hs, cs)
	}
}

func TestOpenCorruption(t *testing.T) {
	withData := func(t *testing.T) vfs.FS {
		fsys := vfs.NewMem()
		l := createLog(t, fsys)
		m := newModel(t)
		ents, _, _ := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 10}})
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.RecordApplied(12, nil); err != nil {
			t.Fatal(err)
		}
		if err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		l.Close()
		return fsys
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, fsys vfs.FS)
	}{
		{"raft-state missing beside batches", func(t *testing.T, fsys vfs.FS) {
			if err := fsys.Remove("p/raft-state"); err != nil {
				t.Fatal(err)
			}
		}},
		{"raft-state damaged", func(t *testing.T, fsys vfs.FS) {
			b, _ := vfs.ReadFile(fsys, "p/raft-state")
			b[30] ^= 1
			if err := vfs.WriteFileAtomic(fsys, "p/raft-state", b); err != nil {
				t.Fatal(err)
			}
		}},
		{"raft-meta missing", func(t *testing.T, fsys vfs.FS) {
			if err := fsys.Remove("p/raft-meta"); err != nil {
				t.Fatal(err)
			}
		}},
		{"applied entry lost", func(t *testing.T, fsys vfs.FS) {
			st, err := storage.Open(fsys, "p", testCfg, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.TruncateSuffix(0); err != nil {
				t.Fatal(err)
			}
			st.Close()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := withData(t)
			c.damage(t, fsys)
			var corrupt *storage.CorruptionError
			if _, err := Open(fsys, "p", testCfg, 0); !errors.As(err, &corrupt) {
				t.Fatalf("Open: %v, want a storage.CorruptionError", err)
			}
		})
	}
}

// TestAppendConformance appends, overrides suffixes and reopens, and
// after each step every answer is MemoryStorage's.
func TestAppendConformance(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	defer func() { l.Close() }()
	m := newModel(t)
	step := func(first uint64, specs ...spec) {
		t.Helper()
		ents, begins, end := m.build(t, first, specs)
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
		matches(t, l, m)
	}
	step(11, mixedSpecs...)
	step(18, spec{kind: 'e', term: 8}, spec{kind: 'd', term: 8, records: 2, valueBytes: 50}, spec{kind: 'n', term: 8})
	step(21, spec{kind: 'd', term: 8, records: 1, valueBytes: 10})
	// An overlap that changes nothing new still rewrites the suffix.
	step(20, spec{kind: 'n', term: 8}, spec{kind: 'c', term: 8})
	step(12, spec{kind: 'e', term: 9})
}

// TestAppendRandomConformance runs random appends with overridden
// suffixes, checking every answer after each append and after a reopen.
func TestAppendRandomConformance(t *testing.T) {
	for seed := uint64(1); seed <= 16; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			m := newModel(t)
			term := testBoot.Term
			for round := range 8 {
				newTerm := round == 0 || rng.IntN(3) == 0
				term = appendRandom(t, l, m, rng, term, testBoot.Index, newTerm, int64(round))
				matches(t, l, m)
				if rng.IntN(2) == 0 {
					if err := l.Checkpoint(); err != nil {
						t.Fatal(err)
					}
				} else if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				l.Close()
				l = openLog(t, fsys)
				matches(t, l, m)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	m := newModel(t)
	good, _, _ := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1, valueBytes: 5}})
	withType := func(e *raftpb.Entry, typ *raftpb.EntryType) *raftpb.Entry {
		c := proto.Clone(e).(*raftpb.Entry)
		c.Type = typ
		return c
	}
	withTerm := func(e *raftpb.Entry, term uint64) *raftpb.Entry {
		c := proto.Clone(e).(*raftpb.Entry)
		c.Term = proto.Uint64(term)
		return c
	}
	withIndex := func(e *raftpb.Entry, index uint64) *raftpb.Entry {
		c := proto.Clone(e).(*raftpb.Entry)
		c.Index = proto.Uint64(index)
		return c
	}
	restamped := func(base int64, epoch int32) *raftpb.Entry {
		return &raftpb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(12), Data: stampedBatch(t, base, spec{term: uint64(epoch), records: 1})}
	}
	cases := []struct {
		name string
		ents []*raftpb.Entry
	}{
		{"gap after the last entry", []*raftpb.Entry{withIndex(good[0], 12)}},
		{"indexes not consecutive", []*raftpb.Entry{good[0], withIndex(good[1], 13)}},
		{"term moving back", []*raftpb.Entry{withTerm(good[0], 1)}},
		{"data raising the term", []*raftpb.Entry{good[0], withTerm(restamped(0, 4), 4)}},
		{"empty entry with a Type starting a term", []*raftpb.Entry{withType(good[0], raftpb.EntryNormal.Enum())}},
		{"empty entry without a Type mid-term", []*raftpb.Entry{good[0], withTerm(good[0], 3)}},
		{"batch with another epoch", []*raftpb.Entry{good[0], restamped(0, 2)}},
		{"batch not at the log end", []*raftpb.Entry{good[0], restamped(5, 3)}},
		{"data with an explicit Type", []*raftpb.Entry{good[0], withType(good[1], raftpb.EntryNormal.Enum())}},
		{"command starting a term", []*raftpb.Entry{{Term: proto.Uint64(3), Index: proto.Uint64(11), Data: []byte{0x81}}}},
		{"term past the largest epoch", []*raftpb.Entry{withTerm(good[0], math.MaxInt32+1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := createLog(t, vfs.NewMem())
			defer l.Close()
			if err := l.Append(c.ents, 0); !errors.Is(err, errRefusedEntry) {
				t.Fatalf("Append: %v, want errRefusedEntry", err)
			}
			// Nothing was written and the log still works.
			matches(t, l, m)
			if err := l.Append(good, 0); err != nil {
				t.Fatalf("Append after a refusal: %v", err)
			}
		})
	}
	t.Run("over an applied entry", func(t *testing.T) {
		l := createLog(t, vfs.NewMem())
		defer l.Close()
		if err := l.Append(good, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.RecordApplied(12, nil); err != nil {
			t.Fatal(err)
		}
		if err := l.Append([]*raftpb.Entry{withTerm(good[0], 4)}, 0); !errors.Is(err, errRefusedEntry) {
			t.Fatalf("Append: %v, want errRefusedEntry", err)
		}
	})
}

// TestAppendSkipsCompacted: entries at or below the snapshot are already
// in it, as MemoryStorage has it.
func TestAppendSkipsCompacted(t *testing.T) {
	l := createLog(t, vfs.NewMem())
	defer l.Close()
	m := newModel(t)
	ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1}})
	stale := []*raftpb.Entry{{Term: proto.Uint64(2), Index: proto.Uint64(9)}, {Term: proto.Uint64(2), Index: proto.Uint64(10)}}
	if err := l.Append(stale, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(append(stale, ents...), 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	matches(t, l, m)
}

// TestHardStateAcrossReopen: term and vote are durable after Sync, the
// applied index and ConfState after Checkpoint.
func TestHardStateAcrossReopen(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	ents, _, _ := m.build(t, 11, []spec{{kind: 'e', term: 5}, {kind: 'd', term: 5, records: 1}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.SetHardState(&raftpb.HardState{Term: proto.Uint64(5), Vote: proto.Uint64(2<<20 | 1), Commit: proto.Uint64(12)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	conf := &raftpb.ConfState{Voters: []uint64{1<<20 | 1, 2<<20 | 1}, Learners: []uint64{4<<20 | 1}}
	if err := l.RecordApplied(12, conf); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	hs, cs, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetTerm() != 5 || hs.GetVote() != 2<<20|1 || hs.GetCommit() != 12 || cs.Equivalent(conf) != nil {
		t.Errorf("InitialState = %v, %v", hs, cs)
	}
	if err := l.SetHardState(&raftpb.HardState{Term: proto.Uint64(4)}); err == nil {
		t.Error("SetHardState moved the term back")
	}
}

// TestCheckpointBoundsOpen: after a checkpoint, Open walks from the
// anchor of the last data entry; an idle checkpoint writes nothing.
func TestCheckpointBoundsOpen(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := createLog(t, efs)
	m := newModel(t)
	ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1}, {kind: 'd', term: 3, records: 2}, {kind: 'c', term: 3}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := recoveryStart(l.book, l.storage.NextOffset()); got != (Position{Index: 13, Offset: m.beginOf(13)}) {
		t.Errorf("recovery starts at %+v, want entry 13 at %d", got, m.beginOf(13))
	}
	remove := efs.Inject(vfs.Rule{Op: vfs.OpCreate, PathContains: "raft-", Err: errors.New("written")})
	if err := l.Checkpoint(); err != nil {
		t.Errorf("idle checkpoint: %v", err)
	}
	remove()
	l.Close()
	l = openLog(t, efs)
	defer l.Close()
	matches(t, l, m)
}

// TestSyncConcurrentWithAppend runs a flusher syncing in a loop while the
// write side appends (run with -race); every entry a completed Sync
// covered survives a crash.
func TestSyncConcurrentWithAppend(t *testing.T) {
	fsys := vfs.NewCrashFS()
	l := createLog(t, fsys)
	m := newModel(t)
	var mu sync.Mutex
	appended, synced := testBoot.Index, testBoot.Index
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for {
			mu.Lock()
			target := appended
			mu.Unlock()
			if err := l.Sync(); err != nil {
				done <- err
				return
			}
			mu.Lock()
			synced = target
			mu.Unlock()
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 1))
	term := testBoot.Term
	for round := range 40 {
		newTerm := round%10 == 0
		if newTerm {
			term++
		}
		ents, begins, end := m.build(t, m.last()+1, randomSpecs(rng, term, newTerm))
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		m.apply(t, ents, begins, end)
		mu.Lock()
		appended = m.last()
		mu.Unlock()
		if _, err := l.Entries(m.last(), m.last()+1, math.MaxUint64); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := fsys.Crash(vfs.CrashOptions{})
	mu.Lock()
	floor := synced
	mu.Unlock()
	l2 := openLog(t, after)
	defer l2.Close()
	last, _ := l2.LastIndex()
	if last < floor {
		t.Fatalf("recovered up to %d, a completed Sync covered %d", last, floor)
	}
	checkPrefix(t, l2, m.ents)
}

// checkPrefix checks that l holds exactly a prefix of ents.
func checkPrefix(t *testing.T, l *Log, ents []*raftpb.Entry) {
	t.Helper()
	last, _ := l.LastIndex()
	n := int(last - testBoot.Index)
	if n > len(ents) {
		t.Fatalf("recovered %d entries, only %d were appended", n, len(ents))
	}
	if n == 0 {
		return
	}
	got, err := l.Entries(testBoot.Index+1, last+1, math.MaxUint64)
	if err != nil || !sameEntries(got, ents[:n]) {
		t.Fatalf("recovered %s, %v; want %s", show(got), err, show(ents[:n]))
	}
	for _, e := range ents[:n] {
		if term, err := l.Term(e.GetIndex()); err != nil || term != e.GetTerm() {
			t.Fatalf("Term(%d) = %d, %v; want %d", e.GetIndex(), term, err, e.GetTerm())
		}
	}
}

// TestFineAnchors: after megabytes of appends, and after a reopen that
// counts them, a count for an entry near the end starts within about
// fineAnchorBytes of it.
func TestFineAnchors(t *testing.T) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	specs := []spec{{kind: 'e', term: 3}}
	for range 60 {
		specs = append(specs, spec{kind: 'd', term: 3, records: 8, valueBytes: 8 << 10})
	}
	ents, begins, end := m.build(t, 11, specs)
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	near := func(l *Log) {
		t.Helper()
		pos, _ := l.book.start(m.last())
		if gap := m.end - pos.Offset; gap > fineAnchorBytes+128<<10 {
			t.Errorf("a count for entry %d starts at entry %d, %d bytes before the end", m.last(), pos.Index, gap)
		}
	}
	near(l)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	near(l)
	want, _ := m.mem.Entries(m.last()-1, m.last()+1, math.MaxUint64)
	if got, err := l.Entries(m.last()-1, m.last()+1, math.MaxUint64); err != nil || !sameEntries(got, want) {
		t.Errorf("Entries = %s, %v; want %s", show(got), err, show(want))
	}
}

// TestCompactConformance compacts random logs at random applied indexes,
// appends and overrides above, and compares every answer, Snapshot's
// included, with MemoryStorage (CreateSnapshot and Compact), before and
// after a reopen.
func TestCompactConformance(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 9))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			m := newModel(t)
			term, applied := testBoot.Term, testBoot.Index
			for round := range 6 {
				newTerm := round == 0 || rng.IntN(3) == 0
				term = appendRandom(t, l, m, rng, term, applied, newTerm, 0)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				applied += rng.Uint64N(m.last() - applied + 1)
				if err := l.RecordApplied(applied, nil); err != nil {
					t.Fatal(err)
				}
				snapIndex, _ := m.mem.FirstIndex()
				if at := snapIndex - 1 + rng.Uint64N(applied-snapIndex+2); at >= snapIndex {
					var conf *raftpb.ConfState
					if rng.IntN(2) == 0 {
						conf = &raftpb.ConfState{Voters: []uint64{uint64(round + 1)}}
					}
					if err := l.Compact(at, conf); err != nil {
						t.Fatal(err)
					}
					if _, err := m.mem.CreateSnapshot(at, conf, nil); err != nil {
						t.Fatal(err)
					}
					if err := m.mem.Compact(at); err != nil {
						t.Fatal(err)
					}
					dropSegmentsBelow(t, l, m.beginOf(at+1))
				}
				matches(t, l, m)
				l.Close()
				l = openLog(t, fsys)
				matches(t, l, m)
				// No checkpoint recorded the applied index, but what is
				// compacted was applied: raft refuses a commit below the
				// snapshot.
				hs, _, _ := l.InitialState()
				if first, _ := l.FirstIndex(); hs.GetCommit() < first-1 {
					t.Fatalf("InitialState commit %d below the snapshot at %d", hs.GetCommit(), first-1)
				}
			}
			first, _ := l.FirstIndex()
			if err := l.Compact(first-1, nil); !errors.Is(err, raft.ErrCompacted) {
				t.Errorf("Compact(%d): %v, want raft.ErrCompacted", first-1, err)
			}
			if last, _ := l.LastIndex(); last > applied {
				if err := l.Compact(applied+1, nil); err == nil {
					t.Errorf("Compact(%d) past the applied index %d", applied+1, applied)
				}
			}
		})
	}
}

// dropSegmentsBelow deletes the sealed segments that end at or below
// offset, as retention does after a compaction.
func dropSegmentsBelow(t *testing.T, l *Log, offset int64) {
	t.Helper()
	for {
		segs := l.storage.Segments()
		if segs[0].Active || segs[0].NextOffset > offset {
			return
		}
		if err := l.storage.DeleteOldestSegment(0); err != nil {
			t.Fatal(err)
		}
	}
}

// withFrequentRewrites makes raft-meta rewrites and anchor thinning
// happen on small files for the rest of the test.
func withFrequentRewrites(t testing.TB) {
	bytes, interval := metaRewriteBytes, anchorIntervalBytes
	metaRewriteBytes, anchorIntervalBytes = 256, 2<<10
	t.Cleanup(func() { metaRewriteBytes, anchorIntervalBytes = bytes, interval })
}

// TestMetaRewrite checkpoints after every append, overriding suffixes
// and compacting now and then, with rewrites made frequent: raft-meta is
// rewritten (its generation grows, its size stays near its live
// records), anchors are thinned but the last is kept, and the log
// answers as MemoryStorage does before and after a reopen.
func TestMetaRewrite(t *testing.T) {
	withFrequentRewrites(t)
	rng := rand.New(rand.NewPCG(3, 3))
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	defer func() { l.Close() }()
	m := newModel(t)
	term, applied := testBoot.Term, testBoot.Index
	for round := range 40 {
		newTerm := round%5 == 0
		term = appendRandom(t, l, m, rng, term, applied, newTerm, 0)
		if err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if round%7 == 6 {
			applied = m.last() - 2
			if err := l.RecordApplied(applied, nil); err != nil {
				t.Fatal(err)
			}
			if err := l.Compact(applied-3, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := m.mem.CreateSnapshot(applied-3, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := m.mem.Compact(applied - 3); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l.metaGeneration < 3 {
		t.Errorf("raft-meta generation %d after 40 checkpoints: too few rewrites", l.metaGeneration)
	}
	if n := len(l.book.anchors); n > 25 {
		t.Errorf("%d anchors after 40 checkpoints: rewrites did not thin them", n)
	}
	position := segmentPositions(l.storage.Segments())
	_, kept := l.book.liveRecords(anchorIntervalBytes, position)
	if n := len(kept); n < 2 || kept[n-1].Index != l.w.lastData.Index {
		t.Errorf("kept anchors %+v, want the last data entry %d anchored", kept, l.w.lastData.Index)
	}
	for k := 1; k < len(kept)-1; k++ {
		if gap := position(kept[k].Offset) - position(kept[k-1].Offset); gap < anchorIntervalBytes {
			t.Errorf("anchors %+v and %+v kept about %d bytes apart", kept[k-1], kept[k], gap)
		}
	}
	matches(t, l, m)
	l.Close()
	l = openLog(t, fsys)
	matches(t, l, m)
}

// TestFailures: a failed write or fsync of either file makes the log
// failed (storage.ErrFailed) for every later write and Sync, reads keep
// answering, and a reopen recovers what was written before.
func TestFailures(t *testing.T) {
	cases := []struct {
		name string
		rule vfs.Rule
	}{
		{"raft-meta write", vfs.Rule{Op: vfs.OpWrite, PathContains: "raft-meta"}},
		{"raft-meta fsync", vfs.Rule{Op: vfs.OpSync, PathContains: "raft-meta"}},
		{"segment write", vfs.Rule{Op: vfs.OpWrite, PathContains: ".log"}},
		{"segment fsync", vfs.Rule{Op: vfs.OpSync, PathContains: ".log"}},
		{"raft-state write", vfs.Rule{Op: vfs.OpCreate, PathContains: "raft-state"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			efs := vfs.NewErrorFS(vfs.NewMem())
			l := createLog(t, efs)
			m := newModel(t)
			ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1, valueBytes: 9}})
			if err := l.Append(ents, 0); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			m.apply(t, ents, begins, end)
			rule := c.rule
			rule.Err = syscall.EIO
			remove := efs.Inject(rule)
			more, _, _ := m.build(t, 13, []spec{{kind: 'c', term: 3}, {kind: 'd', term: 3, records: 1, valueBytes: 9}})
			err := l.Append(more, 0)
			if err == nil {
				err = l.SetHardState(&raftpb.HardState{Term: proto.Uint64(4), Vote: proto.Uint64(1)})
			}
			if err == nil {
				err = l.Sync()
			}
			remove()
			if !errors.Is(err, storage.ErrFailed) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("error %v, want storage.ErrFailed and EIO", err)
			}
			if err := l.Sync(); !errors.Is(err, storage.ErrFailed) {
				t.Errorf("Sync after the failure: %v", err)
			}
			if err := l.Append(more, 0); !errors.Is(err, storage.ErrFailed) {
				t.Errorf("Append after the failure: %v", err)
			}
			want, _ := m.mem.Entries(11, 13, math.MaxUint64)
			if got, err := l.Entries(11, 13, math.MaxUint64); err != nil || !sameEntries(got, want) {
				t.Errorf("Entries after the failure = %s, %v", show(got), err)
			}
			l.Close()
			l = openLog(t, efs)
			defer l.Close()
			if got, err := l.Entries(11, 13, math.MaxUint64); err != nil || !sameEntries(got, want) {
				t.Errorf("Entries after a reopen = %s, %v", show(got), err)
			}
		})
	}
}

// TestSyncConcurrentWithOverrides runs a flusher syncing in a loop while
// the write side appends, overrides suffixes, sets hard states,
// checkpoints and compacts (run with -race); the log then reopens with
// every answer MemoryStorage's.
func TestSyncConcurrentWithOverrides(t *testing.T) {
	withFrequentRewrites(t)
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	m := newModel(t)
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for {
			if err := l.Sync(); err != nil {
				done <- err
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
		}
	}()
	rng := rand.New(rand.NewPCG(2, 2))
	term, applied := testBoot.Term, testBoot.Index
	for round := range 40 {
		newTerm := round%4 == 0
		first := m.last() + 1
		if newTerm {
			term++
			if m.last() > applied {
				first = applied + 1 + rng.Uint64N(m.last()-applied)
			}
		}
		ents, begins, end := m.build(t, first, randomSpecs(rng, term, newTerm))
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		m.apply(t, ents, begins, end)
		if err := l.SetHardState(&raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(uint64(round))}); err != nil {
			t.Fatal(err)
		}
		if round%5 == 4 {
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			applied = m.last() - 1
			if err := l.RecordApplied(applied, nil); err != nil {
				t.Fatal(err)
			}
			if err := l.Compact(applied-1, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := m.mem.CreateSnapshot(applied-1, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := m.mem.Compact(applied - 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, fsys)
	defer l.Close()
	matches(t, l, m)
	if hs, _, _ := l.InitialState(); hs.GetTerm() != term || hs.GetVote() != 39 {
		t.Errorf("hard state %v, want term %d vote 39", hs, term)
	}
}

// TestAppendDiskFull: a data write refused for lack of space leaves the log
// ending at the entry before the failed run, not failed: the same entries
// are taken once space returns, and a reopen finds what was synced.
func TestAppendDiskFull(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := createLog(t, efs)
	defer func() { l.Close() }()
	m := newModel(t)
	ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 1}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	full, fullBegins, fullEnd := m.build(t, 13, []spec{{kind: 'n', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 30}})
	remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: ".log", Err: syscall.ENOSPC})
	if err := l.Append(full, 0); !errors.Is(err, syscall.ENOSPC) || errors.Is(err, storage.ErrFailed) {
		t.Fatalf("append on a full disk: %v", err)
	}
	// The non-data entry before the run was written; the run was not.
	m.apply(t, full[:1], fullBegins[:1], fullBegins[1])
	matches(t, l, m)
	remove()
	if err := l.Append(full[1:], 0); err != nil {
		t.Fatalf("append once space returned: %v", err)
	}
	m.apply(t, full[1:], fullBegins[1:], fullEnd)
	matches(t, l, m)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, efs)
	matches(t, l, m)
}

// TestOpenTellsSyncedDamageFromTornTail: batches past the segments'
// recovery point that a Sync covered and a disk then damaged are
// corruption at Open (the Synced record says they were durable), where
// the same bytes never synced are a torn tail Open cuts. A replica that
// cut the former would have lost entries it acknowledged, and could vote
// a leader lacking them into office before any leader told it.
func TestOpenTellsSyncedDamageFromTornTail(t *testing.T) {
	damages := []struct {
		name   string
		damage func(data []byte, from int) []byte
	}{
		{"last batch cut short", func(data []byte, from int) []byte { return data[:len(data)-7] }},
		{"bit flipped in the first batch past the recovery point", func(data []byte, from int) []byte {
			data[from+30] ^= 0x10
			return data
		}},
		{"leader epoch of that batch changed (its CRC does not cover it)", func(data []byte, from int) []byte {
			data[from+15] ^= 0x04 // PartitionLeaderEpoch: bytes 12 to 16
			return data
		}},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			fsys, name, from := buildPastCheckpoint(t, true, nil)
			data, err := vfs.ReadFile(fsys, name)
			if err != nil || len(data) <= from {
				t.Fatalf("segment of %d bytes, the recovery point at %d: %v", len(data), from, err)
			}
			damaged := d.damage(data, from)
			if err := vfs.WriteFileAtomic(fsys, name, damaged); err != nil {
				t.Fatal(err)
			}
			var corrupt *storage.CorruptionError
			if _, err := Open(fsys, "p", testCfg, 0); !errors.As(err, &corrupt) {
				t.Fatalf("Open: %v, want a storage.CorruptionError", err)
			}
			// Refused before anything was cut: the batches after the
			// damage stay for whoever looks at the directory.
			if after, err := vfs.ReadFile(fsys, name); err != nil || !bytes.Equal(after, damaged) {
				t.Fatalf("segment after the refused Open: %d bytes (%v), want the %d damaged bytes unchanged", len(after), err, len(damaged))
			}
		})
	}
	t.Run("never synced", func(t *testing.T) {
		// The crash kept nothing of the second run: what it would have
		// torn is gone, and the log ends after the first.
		fsys, _, _ := buildPastCheckpoint(t, false, nil)
		l := openLog(t, fsys)
		defer l.Close()
		if last, _ := l.LastIndex(); last != 12 {
			t.Fatalf("LastIndex = %d, want 12", last)
		}
	})
	t.Run("cut below a synced end by a later override", func(t *testing.T) {
		// An override cuts synced entries: Open after it finds no damage.
		fsys, _, _ := buildPastCheckpoint(t, true, nil)
		l := openLog(t, fsys)
		m := newModel(t)
		ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 10}})
		m.apply(t, ents, begins, end)
		ents, _, _ = m.build(t, 13, []spec{{kind: 'e', term: 4}})
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l = openLog(t, fsys)
		defer l.Close()
		if last, _ := l.LastIndex(); last != 13 {
			t.Fatalf("LastIndex = %d, want 13", last)
		}
	})
}

// TestOpenTellsSyncedMetaDamage: raft-meta's records past raft-state's
// recovery point are cut as a torn tail when damaged, so a record whose
// loss would lose entries (here a term's first entry, which the batches
// after it are counted from) must not stay there once a Sync covered it:
// Sync moves the recovery point past it, and its damage is corruption.
// Synced records alone may stay past it: losing one only weakens the
// segments' check.
func TestOpenTellsSyncedMetaDamage(t *testing.T) {
	t.Run("a term's first entry", func(t *testing.T) {
		fsys, _, _ := buildPastCheckpoint(t, true, []spec{{kind: 'e', term: 4}, {kind: 'd', term: 4, records: 2, valueBytes: 40}})
		damageLastMetaRecord(t, fsys, RecordEntry)
		var corrupt *storage.CorruptionError
		if _, err := Open(fsys, "p", testCfg, 0); !errors.As(err, &corrupt) {
			t.Fatalf("Open: %v, want a storage.CorruptionError", err)
		}
	})
	t.Run("a compaction point", func(t *testing.T) {
		// Compact's record, synced, precedes the caller dropping segments.
		fsys := vfs.NewCrashFS()
		l := createLog(t, fsys)
		m := newModel(t)
		ents, _, _ := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 10}, {kind: 'd', term: 3, records: 1}})
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if err := l.RecordApplied(13, nil); err != nil {
			t.Fatal(err)
		}
		if err := l.Compact(12, nil); err != nil {
			t.Fatal(err)
		}
		crashed := fsys.Crash(vfs.CrashOptions{})
		l.Close()
		damageLastMetaRecord(t, crashed, RecordSnapshot)
		var corrupt *storage.CorruptionError
		if _, err := Open(crashed, "p", testCfg, 0); !errors.As(err, &corrupt) {
			t.Fatalf("Open: %v, want a storage.CorruptionError", err)
		}
	})
	t.Run("a Synced record", func(t *testing.T) {
		fsys, _, _ := buildPastCheckpoint(t, true, nil)
		damageLastMetaRecord(t, fsys, RecordSynced)
		l := openLog(t, fsys)
		defer l.Close()
		if last, _ := l.LastIndex(); last != 14 {
			t.Fatalf("LastIndex = %d, want 14", last)
		}
	})
}

// damageLastMetaRecord flips a bit in the body of the last record of type
// typ in p/raft-meta, which must lie past the first checkpoint's end.
func damageLastMetaRecord(t *testing.T, fsys vfs.FS, typ RecordType) {
	t.Helper()
	b, err := vfs.ReadFile(fsys, "p/raft-meta")
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for at := metaHeaderBytes; at < len(b); {
		rt, _, size, err := nextRecord(b[at:])
		if err != nil {
			t.Fatalf("record at %d: %v", at, err)
		}
		if rt == typ {
			last = at
		}
		at += size
	}
	if last < 0 {
		t.Fatalf("no %s record in raft-meta", typ)
	}
	b[last+recordHeaderBytes] ^= 0x01
	if err := vfs.WriteFileAtomic(fsys, "p/raft-meta", b); err != nil {
		t.Fatal(err)
	}
}

// buildPastCheckpoint appends a checkpointed first run (entries 11 and 12,
// term 3), then past the recovery point a second run from entry 13 of
// specs (two data entries of term 3 when nil), synced or not, and
// crashes; it returns the crashed filesystem, the segment's name and
// where the second run begins in it.
func buildPastCheckpoint(t *testing.T, synced bool, specs []spec) (vfs.FS, string, int) {
	fsys := vfs.NewCrashFS()
	l, m := checkpointedFirstRun(t, fsys)
	name := "p/" + segmentName(t, fsys)
	size, err := fsys.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if specs == nil {
		specs = []spec{{kind: 'd', term: 3, records: 3, valueBytes: 40}, {kind: 'd', term: 3, records: 1, valueBytes: 40}}
	}
	ents, _, _ := m.build(t, 13, specs)
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	if synced {
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	crashed := fsys.Crash(vfs.CrashOptions{})
	l.Close()
	return crashed, name, int(size)
}

// segmentName returns the name of the only segment file in dir p.
func segmentName(t *testing.T, fsys vfs.FS) string {
	t.Helper()
	names, err := fsys.List("p")
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			segs = append(segs, n)
		}
	}
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	return segs[0]
}

// TestLostNonDataRecordNeverRenumbers: a conf change (a non-data entry,
// in raft-meta alone) followed by data of the same term in one Append,
// with the power cut at every call of the Append and the Sync after it,
// then that record damaged: Open refuses the log or gives a prefix of the
// entries. Past raft-state's recovery point the damaged record would be
// cut as a torn tail while the batches after it stayed, each then counted
// one index too low, which the epoch check cannot see within a term; so
// the record's sync moves that point past it before any batch after it is
// written.
func TestLostNonDataRecordNeverRenumbers(t *testing.T) {
	for budget := 1; ; budget++ {
		if budget > 200 {
			t.Fatal("the append and sync never completed")
		}
		cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{Rand: rand.New(rand.NewPCG(uint64(budget), 7))})
		l, m := checkpointedFirstRun(t, cfs)
		ents, begins, end := m.build(t, 13, []spec{{kind: 'c', term: 3}, {kind: 'd', term: 3, records: 3, valueBytes: 40}, {kind: 'd', term: 3, records: 1, valueBytes: 40}})
		m.apply(t, ents, begins, end)
		cfs.CutAfter(budget)
		err := l.Append(ents, 0)
		if err == nil {
			err = l.Sync()
		}
		completed := !cfs.Cut()
		if completed && err != nil {
			t.Fatalf("append and sync without a crash: %v", err)
		}
		after := cfs.Crash()
		damageLastMetaRecord(t, after, RecordEntry)
		var corrupt *storage.CorruptionError
		l, err = Open(after, "p", testCfg, 0)
		if errors.As(err, &corrupt) {
			if completed {
				return
			}
			continue
		}
		if err != nil {
			t.Fatalf("budget %d: open: %v", budget, err)
		}
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		got, err := l.Entries(first, last+1, 1<<30)
		if err != nil || last > m.last() || !sameEntries(got, m.ents[:last-testBoot.Index]) {
			t.Fatalf("budget %d: the log holds %s (%v), want a prefix of %s", budget, show(got), err, show(m.ents))
		}
		l.Close()
		if completed {
			return
		}
	}
}

// checkpointedFirstRun creates a log on fsys holding entries 11 and 12
// (term 3: its first entry, then data), checkpointed, and its model.
func checkpointedFirstRun(t *testing.T, fsys vfs.FS) (*Log, *model) {
	t.Helper()
	l := createLog(t, fsys)
	m := newModel(t)
	ents, begins, end := m.build(t, 11, []spec{{kind: 'e', term: 3}, {kind: 'd', term: 3, records: 2, valueBytes: 10}})
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	m.apply(t, ents, begins, end)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	return l, m
}
