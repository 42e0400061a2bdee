package raftlog

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage/vfs"
)

// withCacheBudget runs fn with the entry cache bounded by budget.
func withCacheBudget(t *testing.T, budget int, fn func(t *testing.T)) {
	t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
		saved := entryCacheBudget
		entryCacheBudget = budget
		defer func() { entryCacheBudget = saved }()
		fn(t)
	})
}

// cacheBudgets: none, tiny (a couple of entries: evictions in the middle
// of every range read) and large (everything appended since the open).
var cacheBudgets = []int{0, 2*entryOverheadBytes + 300, 1 << 30}

// TestConformanceAtCacheBudgets runs the write side's conformance tables
// against MemoryStorage with the cache at each budget: whatever it holds,
// every answer is the same.
func TestConformanceAtCacheBudgets(t *testing.T) {
	tests := []struct {
		name string
		test func(*testing.T)
	}{
		{"Append", TestAppendConformance},
		{"AppendRandom", TestAppendRandomConformance},
		{"Compact", TestCompactConformance},
		{"ApplySnapshot", TestApplySnapshotConformance},
		{"ApplySnapshotConcurrent", TestApplySnapshotConcurrent},
		{"SyncBesideAppend", TestSyncConcurrentWithAppend},
		{"SyncBesideOverrides", TestSyncConcurrentWithOverrides},
	}
	for _, budget := range cacheBudgets {
		withCacheBudget(t, budget, func(t *testing.T) {
			for _, c := range tests {
				t.Run(c.name, c.test)
			}
		})
	}
}

// entriesQuery is one Entries call and its answer.
type entriesQuery struct {
	lo, hi, maxSize uint64
	ents            []*raftpb.Entry
	err             error
}

// askEntries asks l for every range [lo, hi) around [first-1, last+1] at
// a few size limits.
func askEntries(l *Log) []entriesQuery {
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	var out []entriesQuery
	for lo := first - 1; lo <= last+1; lo++ {
		for hi := lo; hi <= last+2; hi++ {
			for _, maxSize := range []uint64{0, 200, 2000, math.MaxUint64} {
				ents, err := l.Entries(lo, hi, maxSize)
				out = append(out, entriesQuery{lo: lo, hi: hi, maxSize: maxSize, ents: ents, err: err})
			}
		}
	}
	return out
}

// TestEntriesCacheMatchesSegments builds random histories (appends,
// overridden suffixes, compactions) and checks, after each step, that
// every Entries answer served with the cache is the answer of the same
// log reopened, which reads the segments; and that the cache served
// some.
func TestEntriesCacheMatchesSegments(t *testing.T) {
	for _, budget := range cacheBudgets[1:] {
		withCacheBudget(t, budget, func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				t.Run(fmt.Sprint(seed), func(t *testing.T) { cacheMatchesSegments(t, seed) })
			}
		})
	}
}

func cacheMatchesSegments(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	defer func() { l.Close() }()
	m := newModel(t)
	term, applied := testBoot.Term, testBoot.Index
	served := 0
	for round := range 10 {
		newTerm := round == 0 || rng.IntN(3) == 0
		term = appendRandom(t, l, m, rng, term, applied, newTerm, int64(round))
		if rng.IntN(4) == 0 {
			compactSome(t, l, rng, &applied)
		}
		checkCache(t, l)
		got := askEntries(l)
		served += cacheHits(l, got)
		appended := askAppendedData(l)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l = openLog(t, fsys)
		if len(l.cache.ents) != 0 {
			t.Fatalf("a reopened log caches %d entries", len(l.cache.ents))
		}
		if len(askAppendedData(l)) != 0 {
			t.Fatal("a reopened log answers AppendedData")
		}
		sameAnswers(t, got, askEntries(l))
		sameAppendedData(t, appended, l)
	}
	if served == 0 {
		t.Fatal("no answer came from the cache")
	}
}

// askAppendedData returns what AppendedData answers for every entry of l.
func askAppendedData(l *Log) map[uint64][]byte {
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	out := map[uint64][]byte{}
	for i := first - 1; i <= last+1; i++ {
		if data, ok := l.AppendedData(i); ok {
			out[i] = bytes.Clone(data)
		}
	}
	return out
}

// sameAppendedData checks that each AppendedData answer is the Data of the
// entry at that index as l, reopened, reads it from the segments.
func sameAppendedData(t *testing.T, appended map[uint64][]byte, l *Log) {
	t.Helper()
	for i, data := range appended {
		ents, err := l.Entries(i, i+1, math.MaxUint64)
		if err != nil {
			t.Fatalf("AppendedData(%d) answered, the segments: %v", i, err)
		}
		if !bytes.Equal(data, ents[0].GetData()) {
			t.Fatalf("AppendedData(%d) = %d bytes, the segments hold %d other ones", i, len(data), len(ents[0].GetData()))
		}
	}
}

// compactSome applies up to a random entry and compacts there.
func compactSome(t *testing.T, l *Log, rng *rand.Rand, applied *uint64) {
	t.Helper()
	last, _ := l.LastIndex()
	first, _ := l.FirstIndex()
	if last < first {
		return
	}
	at := first + rng.Uint64N(last-first+1)
	*applied = max(at, *applied)
	if err := l.RecordApplied(*applied, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(at, nil); err != nil {
		t.Fatal(err)
	}
}

// cacheHits counts the answers the cache of l holds.
func cacheHits(l *Log, qs []entriesQuery) int {
	n := 0
	for _, q := range qs {
		if q.err == nil && q.lo < q.hi {
			if _, ok := l.cache.entries(q.lo, q.hi, q.maxSize); ok {
				n++
			}
		}
	}
	return n
}

func sameAnswers(t *testing.T, got, want []entriesQuery) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d queries, want %d", len(got), len(want))
	}
	for k, g := range got {
		w := want[k]
		if fmt.Sprint(g.err) != fmt.Sprint(w.err) {
			t.Fatalf("Entries(%d, %d, %d) with the cache: %v; from the segments: %v", g.lo, g.hi, g.maxSize, g.err, w.err)
		}
		if !sameEntries(g.ents, w.ents) {
			t.Fatalf("Entries(%d, %d, %d) with the cache = %s; from the segments %s", g.lo, g.hi, g.maxSize, show(g.ents), show(w.ents))
		}
	}
}

// TestEntriesFromCacheAreCopies: changing the entries Entries returned
// (their fields; their Data bytes are shared and no reader changes them)
// changes neither the cache nor what Append was given.
func TestEntriesFromCacheAreCopies(t *testing.T) {
	withCacheBudget(t, 1<<30, func(t *testing.T) {
		l := createLog(t, vfs.NewMem())
		defer l.Close()
		m := newModel(t)
		ents, _, _ := m.build(t, 11, mixedSpecs)
		given := make([]*raftpb.Entry, len(ents))
		for k, e := range ents {
			given[k] = proto.Clone(e).(*raftpb.Entry)
		}
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		last, _ := l.LastIndex()
		if _, ok := l.cache.entries(11, last+1, math.MaxUint64); !ok {
			t.Fatal("the cache does not hold what was just appended")
		}
		got, err := l.Entries(11, last+1, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			*e.Term, *e.Index = 99, 99
			e.Type = raftpb.EntryConfChangeV2.Enum()
			e.Data = nil
		}
		if !sameEntries(ents, given) {
			t.Fatalf("entries given to Append changed: %s, were %s", show(ents), show(given))
		}
		again, err := l.Entries(11, last+1, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		if !sameEntries(again, given) {
			t.Fatalf("Entries after changing its answer = %s, want %s", show(again), show(given))
		}
	})
}

// TestEntryCacheBound: the cache never holds more than its budget and
// evicts the oldest, keeping its last entry the log's last.
func TestEntryCacheBound(t *testing.T) {
	withCacheBudget(t, 3*entryOverheadBytes+600, func(t *testing.T) {
		l := createLog(t, vfs.NewMem())
		defer l.Close()
		m := newModel(t)
		rng := rand.New(rand.NewPCG(3, 3))
		term := testBoot.Term
		for round := range 20 {
			term++
			ents, begins, end := m.build(t, m.last()+1, randomSpecs(rng, term, true))
			if err := l.Append(ents, int64(round)); err != nil {
				t.Fatal(err)
			}
			m.apply(t, ents, begins, end)
			checkCache(t, l)
			if lastEnt := ents[len(ents)-1]; len(l.cache.ents) == 0 && cost(lastEnt) <= entryCacheBudget {
				t.Fatalf("round %d: nothing cached, the last entry costs %d", round, cost(lastEnt))
			}
		}
	})
}

// TestEntryCacheKeepsBelowCut: an override drops only the cached entries
// at and above its first one.
func TestEntryCacheKeepsBelowCut(t *testing.T) {
	withCacheBudget(t, 1<<30, func(t *testing.T) {
		l := createLog(t, vfs.NewMem())
		defer l.Close()
		m := newModel(t)
		ents, begins, end := m.build(t, 11, mixedSpecs)
		if err := l.Append(ents, 0); err != nil {
			t.Fatal(err)
		}
		m.apply(t, ents, begins, end)
		cut := uint64(11 + len(ents)/2)
		over, _, _ := m.build(t, cut, []spec{{kind: 'e', term: 50}, {kind: 'd', term: 50, records: 1, valueBytes: 10}})
		if err := l.Append(over, 1); err != nil {
			t.Fatal(err)
		}
		checkCache(t, l)
		if l.cache.first != 11 {
			t.Fatalf("cache starts at %d after a cut at %d, want 11", l.cache.first, cut)
		}
	})
}

// checkCache checks the cache's invariants: its bytes are counted right
// and within the budget, and its entries are the last ones, above the
// compaction point.
func checkCache(t *testing.T, l *Log) {
	t.Helper()
	c := l.cache
	sum := 0
	for _, e := range c.ents {
		sum += cost(e)
	}
	if sum != c.bytes || c.bytes > entryCacheBudget {
		t.Fatalf("cache counts %d bytes, holds %d, budget %d", c.bytes, sum, entryCacheBudget)
	}
	if len(c.ents) == 0 {
		return
	}
	if end := c.first + uint64(len(c.ents)) - 1; end != l.last || c.first <= l.book.snapshot.Index {
		t.Fatalf("cache holds [%d, %d], the log (%d, %d]", c.first, end, l.book.snapshot.Index, l.last)
	}
}
