package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// wantSnapshotData is what a copy of the snapshot at index must hold: the
// model's data entries at or below index that begin at or after start.
func (m *model) wantSnapshotData(index uint64, start int64) []byte {
	var out []byte
	for k, e := range m.ents {
		if e.GetIndex() <= index && m.begins[k] >= start && e.GetType() == 0 && len(e.GetData()) > 0 && e.GetData()[0] != 0x81 {
			out = append(out, e.GetData()...)
		}
	}
	return out
}

// copySnapshotData reads the data below the snapshot at (index, term)
// from start in pieces of at most maxBytes, as a follower copies it,
// checking each piece; at most rounds reads.
func copySnapshotData(l *Log, index, term uint64, start, next int64, maxBytes, rounds int) ([]byte, error) {
	var out []byte
	at := start
	for range rounds {
		d, err := l.ReadSnapshotData(index, term, at, maxBytes)
		if err != nil {
			return nil, err
		}
		if len(d.Batches) > 0 {
			end, err := CheckSnapshotData(d.Batches, at, next)
			if err != nil || end != d.Next {
				return nil, fmt.Errorf("piece at %d: ends at %d (%v), Next %d", at, end, err, d.Next)
			}
		}
		if d.Next <= at && !d.Done(next) {
			return nil, fmt.Errorf("piece at %d does not advance (Next %d)", at, d.Next)
		}
		out, at = append(out, d.Batches...), d.Next
		if d.Done(next) {
			return out, nil
		}
	}
	return nil, fmt.Errorf("copy not done after %d reads (at %d of %d)", rounds, at, next)
}

// TestReadSnapshotData compacts random logs at random applied indexes,
// dropping segments below some of them, and copies the data below each
// snapshot in small pieces: the copy holds exactly the data entries of
// the model from the descriptor's log start to its next offset.
func TestReadSnapshotData(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 31))
			l := createLog(t, vfs.NewMem())
			defer l.Close()
			m := newModel(t)
			term, applied := testBoot.Term, testBoot.Index
			for round := range 5 {
				term = appendRandom(t, l, m, rng, term, applied, round == 0 || rng.IntN(3) == 0, 0)
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				applied = m.last()
				if err := l.RecordApplied(applied, nil); err != nil {
					t.Fatal(err)
				}
				snapIndex, _ := m.mem.FirstIndex()
				at := snapIndex + rng.Uint64N(applied-snapIndex+1)
				if err := l.Compact(at, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := m.mem.CreateSnapshot(at, nil, nil); err != nil {
					t.Fatal(err)
				}
				if err := m.mem.Compact(at); err != nil {
					t.Fatal(err)
				}
				if rng.IntN(2) == 0 {
					dropSegmentsBelow(t, l, m.beginOf(at+1))
				}
				checkSnapshotCopy(t, l, m, at, 1+rng.IntN(600))
			}
		})
	}
}

// checkSnapshotCopy copies the current snapshot's data and compares it
// with the model's.
func checkSnapshotCopy(t *testing.T, l *Log, m *model, at uint64, maxBytes int) {
	t.Helper()
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := DecodeDescriptor(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	if desc.NextOffset != m.beginOf(at+1) {
		t.Fatalf("descriptor's next offset %d, the model's %d", desc.NextOffset, m.beginOf(at+1))
	}
	got, err := copySnapshotData(l, at, m.termAt(at), desc.LogStartOffset, desc.NextOffset, maxBytes, 1000)
	if err != nil {
		t.Fatalf("copy of the snapshot at %d in pieces of %d bytes: %v", at, maxBytes, err)
	}
	want := m.wantSnapshotData(at, desc.LogStartOffset)
	if !bytes.Equal(got, want) {
		t.Fatalf("copy of the snapshot at %d from %d: %d bytes, want %d", at, desc.LogStartOffset, len(got), len(want))
	}
	checkReadWithinBatch(t, l, at, m.termAt(at), want)
}

// checkReadWithinBatch reads from within the first batch of want holding
// several offsets, one byte at most, as a copy's first read at a log start
// inside a batch does: that batch is sent whole, and the next read starts
// after it.
func checkReadWithinBatch(t *testing.T, l *Log, index, term uint64, want []byte) {
	t.Helper()
	for rest := want; len(rest) > 0; {
		h, _, after, err := batch.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		if h.LastOffsetDelta > 0 {
			d, err := l.ReadSnapshotData(index, term, h.BaseOffset+1, 1)
			if err != nil || !bytes.Equal(d.Batches, rest[:h.TotalBytes()]) || d.Next != h.NextOffset() {
				t.Fatalf("read within batch [%d, %d]: %d bytes, next %d (%v); want its %d, next %d",
					h.BaseOffset, h.LastOffset(), len(d.Batches), d.Next, err, h.TotalBytes(), h.NextOffset())
			}
			return
		}
		rest = after
	}
}

// TestReadSnapshotDataRefuses: another snapshot than the current one, an
// offset below the log start or past the snapshot's next offset.
func TestReadSnapshotDataRefuses(t *testing.T) {
	l := createLog(t, vfs.NewMem())
	defer l.Close()
	m := newModel(t)
	rng := rand.New(rand.NewPCG(5, 5))
	term := testBoot.Term
	for range 4 {
		term = appendRandom(t, l, m, rng, term, m.last(), false, 0)
	}
	if err := l.RecordApplied(m.last(), nil); err != nil {
		t.Fatal(err)
	}
	at := m.last() - 2
	if err := l.Compact(at, nil); err != nil {
		t.Fatal(err)
	}
	next := m.beginOf(at + 1)
	if _, err := l.ReadSnapshotData(at, m.termAt(at), 0, 1<<20); err != nil {
		t.Fatalf("current snapshot: %v", err)
	}
	for _, c := range []struct {
		name        string
		index, term uint64
		offset      int64
		want        error
	}{
		{"older index", testBoot.Index, testBoot.Term, 0, ErrSnapshotChanged},
		{"other term", at, m.termAt(at) + 1, 0, ErrSnapshotChanged},
		{"past next offset", at, m.termAt(at), next + 1, nil},
	} {
		if _, err := l.ReadSnapshotData(c.index, c.term, c.offset, 1<<20); err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	dropSegmentsBelow(t, l, next)
	if start := l.storage.StartOffset(); start > 0 {
		if _, err := l.ReadSnapshotData(at, m.termAt(at), start-1, 1<<20); !errors.Is(err, ErrSnapshotChanged) {
			t.Errorf("below the log start %d: %v, want ErrSnapshotChanged", start, err)
		}
	}
	if err := l.Compact(at+1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadSnapshotData(at, m.termAt(at), next, 1<<20); !errors.Is(err, ErrSnapshotChanged) {
		t.Errorf("after a later compaction: %v, want ErrSnapshotChanged", err)
	}
}

// TestCheckSnapshotData refuses pieces a follower must not keep.
func TestCheckSnapshotData(t *testing.T) {
	b := func(base int64, records int) []byte {
		return stampedBatch(t, base, spec{term: 3, records: records, valueBytes: 10})
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	corrupt := b(10, 2)
	corrupt[len(corrupt)-1] ^= 1
	for _, c := range []struct {
		name     string
		data     []byte
		from     int64
		next     int64
		wantEnd  int64
		wantFail bool
	}{
		{"contiguous", cat(b(10, 2), b(12, 3)), 10, 20, 15, false},
		{"gap left by compaction", cat(b(10, 2), b(17, 1)), 10, 20, 18, false},
		{"up to next offset", b(10, 10), 10, 20, 20, false},
		{"empty", nil, 10, 20, 0, true},
		{"below from", b(8, 3), 10, 20, 0, true},
		{"overlap", cat(b(10, 3), b(12, 1)), 10, 20, 0, true},
		{"past next offset", b(18, 3), 10, 20, 0, true},
		{"bad crc", corrupt, 10, 20, 0, true},
		{"torn", b(10, 2)[:30], 10, 20, 0, true},
	} {
		end, err := CheckSnapshotData(c.data, c.from, c.next)
		if (err != nil) != c.wantFail || (!c.wantFail && end != c.wantEnd) {
			t.Errorf("%s: end %d, err %v; want end %d, failure %v", c.name, end, err, c.wantEnd, c.wantFail)
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, batch.ErrCorrupt) && !errors.Is(err, batch.ErrShort) {
			t.Errorf("%s: %v is neither ErrInvalid nor a batch error", c.name, err)
		}
	}
}

// FuzzCheckSnapshotData checks that verifying arbitrary bytes as a piece
// of snapshot data never panics, fails only with ErrInvalid or a batch
// error, and that what it accepts ends after from and at most at next.
func FuzzCheckSnapshotData(f *testing.F) {
	f.Add(bytes.Join([][]byte{stampedBatch(f, 10, spec{term: 3, records: 2}), stampedBatch(f, 14, spec{term: 3, records: 1})}, nil), int64(10), int64(20))
	f.Add(stampedBatch(f, 0, spec{term: 1, records: 1, valueBytes: 5}), int64(0), int64(1))
	f.Add([]byte{}, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, input []byte, from, next int64) {
		end, err := CheckSnapshotData(input, from, next)
		firstEnd, firstErr := CheckFirstSnapshotData(input, from, next)
		if err == nil && (firstErr != nil || firstEnd != end) {
			t.Fatalf("a piece the strict check takes ends at %d, the first-piece check says %d (%v)", end, firstEnd, firstErr)
		}
		for _, e := range []error{err, firstErr} {
			if e != nil && !errors.Is(e, ErrInvalid) && !errors.Is(e, batch.ErrCorrupt) && !errors.Is(e, batch.ErrShort) {
				t.Fatalf("unexpected error %v", e)
			}
		}
		// Either way the piece ends past from (its first batch holds it or
		// starts after it) and within the snapshot.
		if firstErr == nil && (firstEnd <= from || firstEnd > next) {
			t.Fatalf("accepted up to %d for the range [%d, %d)", firstEnd, from, next)
		}
	})
}
