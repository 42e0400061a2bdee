package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// twin builds the same Raft log in a raft.MemoryStorage and in segments
// plus bookkeeping, the way the write side will: data entries are whole
// batches stamped with the next offset and the term as epoch, non-data
// entries are Entry records, and an overlap truncates both.
type twin struct {
	t    *testing.T
	mem  *raft.MemoryStorage
	st   *storage.Log
	b    *book
	last uint64
	data int
	// offsets are where each entry began when it was appended.
	offsets map[uint64]int64
}

// spec is one entry to append: kind 'e' empty (starts a term), 'd' data
// (records records of valueBytes), 'c' conf change, 'v' conf change v2,
// 'm' partition command, 'n' no-op (raft's stand-in for a refused conf
// change: empty, mid-term, Type set).
type spec struct {
	kind       byte
	term       uint64
	records    int
	valueBytes int
}

func newTwin(t *testing.T, snapIndex, snapTerm uint64) *twin {
	t.Helper()
	return newTwinOn(t, vfs.NewMem(), snapIndex, snapTerm)
}

func newTwinOn(t *testing.T, fsys vfs.FS, snapIndex, snapTerm uint64) *twin {
	t.Helper()
	cfg := storage.Config{SegmentBytes: 1024, SegmentMs: storage.DefaultSegmentMs}
	st, err := storage.Open(fsys, "p", cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mem := raft.NewMemoryStorage()
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(snapIndex), Term: proto.Uint64(snapTerm)}}
	if err := mem.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	tw := &twin{t: t, mem: mem, st: st, b: &book{}, last: snapIndex, offsets: map[uint64]int64{}}
	tw.apply(&Snapshot{Index: snapIndex, Term: snapTerm, Terms: []TermStart{{Term: snapTerm, Index: 1}}})
	return tw
}

func (tw *twin) apply(r Record) {
	tw.t.Helper()
	if err := tw.b.apply(r); err != nil {
		tw.t.Fatalf("apply %+v: %v", r, err)
	}
}

// append appends entries from index first, truncating both logs first if
// first is not after the last entry.
func (tw *twin) append(first uint64, specs ...spec) {
	tw.t.Helper()
	if first <= tw.last {
		off, _, err := offsetOf(tw.b, &batchReader{log: tw.st, readBytes: headerReadBytes}, first)
		if err != nil {
			tw.t.Fatal(err)
		}
		if err := tw.st.TruncateSuffix(off); err != nil {
			tw.t.Fatal(err)
		}
		tw.apply(&Truncate{Index: first, NextOffset: off})
	}
	var ents []*raftpb.Entry
	for k, s := range specs {
		ents = append(ents, tw.appendOne(first+uint64(k), s))
	}
	if err := tw.mem.Append(ents); err != nil {
		tw.t.Fatal(err)
	}
	tw.last = first + uint64(len(specs)) - 1
	for i := range tw.offsets {
		if i > tw.last {
			delete(tw.offsets, i)
		}
	}
}

func (tw *twin) appendOne(index uint64, s spec) *raftpb.Entry {
	tw.t.Helper()
	next := tw.st.NextOffset()
	tw.offsets[index] = next
	e := &Entry{Index: index, Term: s.term, NextOffset: next}
	// The entry as raft makes it, built here rather than by the code
	// under test: only conf changes and no-ops carry a Type.
	ent := &raftpb.Entry{Term: proto.Uint64(s.term), Index: proto.Uint64(index)}
	switch s.kind {
	case 'd':
		whole := tw.stamped(next, s)
		if err := tw.st.Append(whole, 0); err != nil {
			tw.t.Fatal(err)
		}
		if tw.data++; tw.data%3 == 0 {
			tw.apply(&Anchor{Index: index, Offset: next})
		}
		return &raftpb.Entry{Term: proto.Uint64(s.term), Index: proto.Uint64(index), Data: bytes.Clone(whole)}
	case 'e':
		e.Kind = KindEmpty
	case 'c':
		e.Kind, e.Data = KindConfChange, []byte("conf change")
		ent.Type = raftpb.EntryConfChange.Enum()
	case 'v':
		e.Kind, e.Data = KindConfChangeV2, []byte("conf change v2")
		ent.Type = raftpb.EntryConfChangeV2.Enum()
	case 'm':
		e.Kind, e.Data = KindCommand, []byte{0x81, 0, 0, 0, 0, 0, 0, 0, 7}
	case 'n':
		e.Kind = KindNoop
		ent.Type = raftpb.EntryNormal.Enum()
	}
	tw.apply(e)
	ent.Data = bytes.Clone(e.Data)
	return ent
}

// stamped is a batch as a leader stamps it: base offset, epoch = term.
func (tw *twin) stamped(base int64, s spec) []byte {
	recs := make([]batch.Record, s.records)
	for i := range recs {
		recs[i] = batch.Record{Offset: base + int64(i), TimestampMs: int64(i), Value: bytes.Repeat([]byte{byte(base)}, s.valueBytes)}
	}
	tmpl := batch.Header{BaseOffset: base, PartitionLeaderEpoch: int32(s.term), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	whole, err := batch.Encode(tmpl, int32(s.records-1), recs, batch.None)
	if err != nil {
		tw.t.Fatal(err)
	}
	return whole
}

func (tw *twin) log() *Log {
	tw.t.Helper()
	l, err := newLog(tw.st, tw.b)
	if err != nil {
		tw.t.Fatal(err)
	}
	return l
}

// conformance compares every answer of the read side with MemoryStorage's.
func conformance(t *testing.T, tw *twin) {
	l := tw.log()
	first, _ := tw.mem.FirstIndex()
	last, _ := tw.mem.LastIndex()
	if got, _ := l.FirstIndex(); got != first {
		t.Errorf("FirstIndex = %d, want %d", got, first)
	}
	if got, _ := l.LastIndex(); got != last {
		t.Errorf("LastIndex = %d, want %d", got, last)
	}
	for i := uint64(0); i <= last+2; i++ {
		wantTerm, wantErr := tw.mem.Term(i)
		term, err := l.Term(i)
		if term != wantTerm || !sameError(err, wantErr) {
			t.Errorf("Term(%d) = %d, %v; want %d, %v", i, term, err, wantTerm, wantErr)
		}
	}
	for lo := first - 1; lo <= last+1; lo++ {
		sizes := sizeLimits(tw.mem, lo, last+1)
		for hi := lo; hi <= last+1; hi++ {
			for _, maxSize := range sizes {
				want, wantErr := tw.mem.Entries(lo, hi, maxSize)
				got, err := l.Entries(lo, hi, maxSize)
				if !sameError(err, wantErr) || !sameEntries(got, want) {
					t.Errorf("Entries(%d, %d, %d) = %s, %v; want %s, %v", lo, hi, maxSize, show(got), err, show(want), wantErr)
				}
			}
		}
	}
	if _, err := l.Entries(first, last+2, math.MaxUint64); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Entries past the end: %v, want raft.ErrUnavailable", err)
	}
	checkOffsets(t, tw, l)
}

// checkOffsets compares OffsetOf with the offsets seen while appending.
func checkOffsets(t *testing.T, tw *twin, l *Log) {
	first, _ := l.FirstIndex()
	if _, err := l.OffsetOf(first - 1); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("OffsetOf(%d): %v, want raft.ErrCompacted", first-1, err)
	}
	for i := first; i <= tw.last; i++ {
		if got, err := l.OffsetOf(i); err != nil || got != tw.offsets[i] {
			t.Errorf("OffsetOf(%d) = %d, %v; want %d", i, got, err, tw.offsets[i])
		}
	}
	if got, err := l.OffsetOf(tw.last + 1); err != nil || got != tw.st.NextOffset() {
		t.Errorf("OffsetOf(%d) = %d, %v; want the log end %d", tw.last+1, got, err, tw.st.NextOffset())
	}
	if _, err := l.OffsetOf(tw.last + 2); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("OffsetOf(%d): %v, want raft.ErrUnavailable", tw.last+2, err)
	}
}

// sizeLimits are the maxSize values worth asking from lo: none, huge,
// and each total of the first k entries, exactly and one byte either side
// (where the rule "stop before exceeding" shows).
func sizeLimits(mem *raft.MemoryStorage, lo, hi uint64) []uint64 {
	limits := []uint64{0, 1, math.MaxUint64}
	ents, err := mem.Entries(lo, hi, math.MaxUint64)
	if err != nil {
		return limits
	}
	var total uint64
	for _, e := range ents {
		total += uint64(proto.Size(e))
		limits = append(limits, total-1, total, total+1)
	}
	return limits
}

func sameError(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

func sameEntries(got, want []*raftpb.Entry) bool {
	if len(got) != len(want) {
		return false
	}
	for k := range got {
		if !proto.Equal(got[k], want[k]) {
			return false
		}
	}
	return true
}

func show(es []*raftpb.Entry) string {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "[%d t%d %s %dB]", e.GetIndex(), e.GetTerm(), e.GetType(), len(e.GetData()))
	}
	return b.String()
}

// mixedOn is mixed over fsys.
func mixedOn(t *testing.T, fsys vfs.FS) *twin {
	tw := newTwinOn(t, fsys, 10, 2)
	tw.append(11, mixedSpecs...)
	return tw
}

// mixed appends entries 11..25 of terms 3, 5 and 7 above a snapshot at
// 10: data of varied sizes between empty entries, conf changes and a
// command and a no-op, spread over several segments.
func mixed(t *testing.T) *twin {
	return mixedOn(t, vfs.NewMem())
}

var mixedSpecs = []spec{
	spec{kind: 'e', term: 3},
	spec{kind: 'd', term: 3, records: 3, valueBytes: 40},
	spec{kind: 'd', term: 3, records: 1, valueBytes: 200},
	spec{kind: 'd', term: 3, records: 5, valueBytes: 10},
	spec{kind: 'c', term: 3},
	spec{kind: 'e', term: 5},
	spec{kind: 'd', term: 5, records: 2, valueBytes: 300},
	spec{kind: 'd', term: 5, records: 1, valueBytes: 1},
	spec{kind: 'n', term: 5},
	spec{kind: 'm', term: 5},
	spec{kind: 'd', term: 5, records: 4, valueBytes: 70},
	spec{kind: 'd', term: 5, records: 1, valueBytes: 900},
	spec{kind: 'v', term: 5},
	spec{kind: 'e', term: 7},
	spec{kind: 'd', term: 7, records: 2, valueBytes: 5},
}

func TestEntriesReadFailure(t *testing.T) {
	// Whichever segment read fails, Entries returns the failure, never
	// fewer or other entries than asked for.
	efs := vfs.NewErrorFS(vfs.NewMem())
	tw := mixedOn(t, efs)
	l := tw.log()
	want, _ := tw.mem.Entries(11, 26, math.MaxUint64)
	failed := 0
	for after := 0; after < 100; after++ {
		remove := efs.Inject(vfs.Rule{Op: vfs.OpRead, PathContains: ".log", Err: syscall.EIO, After: after})
		got, err := l.Entries(11, 26, math.MaxUint64)
		remove()
		if err == nil {
			if !sameEntries(got, want) {
				t.Fatalf("read failing after %d: Entries = %s, want %s", after, show(got), show(want))
			}
			if failed == 0 {
				t.Fatal("no read failed: the rule matched nothing")
			}
			return
		}
		if !errors.Is(err, syscall.EIO) || got != nil {
			t.Fatalf("read failing after %d: Entries = %s, %v; want nil and EIO", after, show(got), err)
		}
		failed++
	}
	t.Fatal("Entries still failing after 100 reads")
}

func TestConformanceMixed(t *testing.T) {
	conformance(t, mixed(t))
}

func TestConformanceAfterTruncation(t *testing.T) {
	tw := mixed(t)
	// A leader of term 8 overrides everything from 18 on.
	tw.append(18,
		spec{kind: 'e', term: 8},
		spec{kind: 'd', term: 8, records: 2, valueBytes: 50},
		spec{kind: 'c', term: 8},
		spec{kind: 'd', term: 8, records: 1, valueBytes: 500},
	)
	conformance(t, tw)
}

func TestConformanceOnlySnapshot(t *testing.T) {
	conformance(t, newTwin(t, 10, 2))
}

func TestConformanceDataRightAfterSnapshot(t *testing.T) {
	// A term that began below the snapshot goes on above it with data.
	tw := newTwin(t, 10, 2)
	tw.append(11,
		spec{kind: 'd', term: 2, records: 1, valueBytes: 100},
		spec{kind: 'd', term: 2, records: 3, valueBytes: 100},
		spec{kind: 'e', term: 4},
		spec{kind: 'd', term: 4, records: 1, valueBytes: 100},
	)
	conformance(t, tw)
}

func TestEntriesDataIsACopy(t *testing.T) {
	tw := mixed(t)
	l := tw.log()
	ents, err := l.Entries(12, 26, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		for k := range e.Data {
			e.Data[k] ^= 0xff
		}
	}
	want, _ := tw.mem.Entries(12, 26, math.MaxUint64)
	again, err := l.Entries(12, 26, math.MaxUint64)
	if err != nil || !sameEntries(again, want) {
		t.Errorf("after changing returned data, Entries = %s, %v; want %s", show(again), err, show(want))
	}
}

func TestNewLogRefusesBookPastSegments(t *testing.T) {
	tw := mixed(t)
	// raft-meta names entry 27 after offset 10000, far past the segments.
	tw.apply(&Entry{Index: 27, Term: 7, Kind: KindCommand, NextOffset: 10000, Data: []byte{0x81}})
	if _, err := newLog(tw.st, tw.b); !errors.Is(err, errLogMismatch) {
		t.Errorf("newLog: %v, want errLogMismatch", err)
	}
}

func TestNewLogRefusesWrongEpoch(t *testing.T) {
	tw := newTwin(t, 10, 2)
	tw.append(11, spec{kind: 'e', term: 3})
	// A batch of epoch 2 in term 3: the segments and raft-meta disagree.
	if err := tw.st.Append(tw.stamped(0, spec{term: 2, records: 1, valueBytes: 1}), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := newLog(tw.st, tw.b); !errors.Is(err, errLogMismatch) {
		t.Errorf("newLog: %v, want errLogMismatch", err)
	}
}

func TestEntriesSegmentsCutUnderneath(t *testing.T) {
	// The segments lose their last batch (entry 25) behind the Log's back:
	// Entries reports the disagreement rather than returning fewer entries
	// as if a size limit had stopped it.
	tw := mixed(t)
	l := tw.log()
	if err := tw.st.TruncateSuffix(tw.offsets[25]); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Entries(17, 26, math.MaxUint64); !errors.Is(err, errLogMismatch) {
		t.Errorf("Entries = %s, %v; want errLogMismatch", show(got), err)
	}
}

func TestConformanceRandomLogs(t *testing.T) {
	// Logs as raft builds them: each term opens with its leader's empty
	// entry, and a new leader may override a suffix.
	for seed := uint64(1); seed <= 24; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			tw := newTwin(t, 10, 2)
			term := uint64(2)
			kinds := []byte{'d', 'd', 'd', 'd', 'c', 'v', 'm', 'n'}
			for round := range 3 {
				first := tw.last + 1
				if round > 0 {
					first = 11 + rng.Uint64N(tw.last-10+1)
				}
				var specs []spec
				if round > 0 || rng.IntN(2) == 0 {
					term++
					specs = append(specs, spec{kind: 'e', term: term})
				}
				for range 2 + rng.IntN(6) {
					k := kinds[rng.IntN(len(kinds))]
					specs = append(specs, spec{kind: k, term: term, records: 1 + rng.IntN(4), valueBytes: rng.IntN(400)})
				}
				tw.append(first, specs...)
			}
			conformance(t, tw)
		})
	}
}
