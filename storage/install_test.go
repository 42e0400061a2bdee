package storage

import (
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// gappedBatches makes 40 batches of 2 records from start, a gap of 0–4
// offsets before each (a compacted log's data), and returns them with the
// offset after the last.
func gappedBatches(start int64, seed uint64) ([][]byte, int64) {
	r := rand.New(rand.NewPCG(seed, 3))
	var out [][]byte
	offset := start
	for i := range 40 {
		offset += int64(r.IntN(5))
		out = append(out, makeBatch(offset, 2, 100, int64(1000+10*i)))
		offset += 2
	}
	return out, offset
}

// pieces yields batches a few at a time, as a copy's pieces come.
func pieces(batches [][]byte) func() ([]byte, error) {
	i := 0
	return func() ([]byte, error) {
		if i >= len(batches) {
			return nil, io.EOF
		}
		var piece []byte
		for n := 0; n < 3 && i < len(batches); n++ {
			piece, i = append(piece, batches[i]...), i+1
		}
		return piece, nil
	}
}

// emptyAt resets a fresh log holding some batches to an empty one at at.
func emptyAt(t testing.TB, fsys vfs.FS, at int64) *Log {
	t.Helper()
	l, _ := truncationLog(t, fsys, "p")
	if err := l.Reset(at, 0); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestInstallBelow installs gapped batches below an empty log, in several
// segments: the log starts at the install's start, reads give the batches,
// appends continue at the old offset, and a reopen finds the same.
func TestInstallBelow(t *testing.T) {
	for seed := range uint64(4) {
		fsys := vfs.NewMem()
		batches, end := gappedBatches(10+int64(seed), seed)
		at := end + int64(seed%2)*7 // the snapshot's next offset, at or past the last batch
		l := emptyAt(t, fsys, at)
		if err := l.InstallBelow(10, pieces(batches), 0); err != nil {
			t.Fatal(err)
		}
		if l.StartOffset() != 10 || l.NextOffset() != at || len(l.Segments()) < 3 {
			t.Fatalf("seed %d: after install [%d, %d) in %d segments", seed, l.StartOffset(), l.NextOffset(), len(l.Segments()))
		}
		checkLogHolds(t, l, 10, batches)
		all := append(batches, appendN(t, l, 5, 2, 100, 2000)...)
		checkLogHolds(t, l, 10, all)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		reopened := mustOpen(t, fsys, "p", truncationConfig(), 0)
		if reopened.StartOffset() != 10 {
			t.Fatalf("seed %d: reopened start %d", seed, reopened.StartOffset())
		}
		checkLogHolds(t, reopened, 10, all)
		if err := reopened.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInstallBelowFromInsideABatch: a copy whose log start lies inside
// its first batch (DeleteRecords moved it there on the sender) installs
// that batch whole: the first segment begins with it, the log starts at
// the offset inside it, and a reopen finds the same.
func TestInstallBelowFromInsideABatch(t *testing.T) {
	fsys := vfs.NewMem()
	rest, end := gappedBatches(14, 7)
	batches := append([][]byte{makeBatch(8, 4, 100, 990)}, rest...)
	l := emptyAt(t, fsys, end)
	if err := l.InstallBelow(10, pieces(batches), 0); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 10 || l.Segments()[0].BaseOffset != 8 {
		t.Fatalf("after install: start %d, first segment at %d; want 10 inside the segment at 8", l.StartOffset(), l.Segments()[0].BaseOffset)
	}
	checkLogHolds(t, l, 10, batches)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, fsys, "p", truncationConfig(), 0)
	defer reopened.Close()
	if reopened.StartOffset() != 10 {
		t.Fatalf("reopened start %d, want 10", reopened.StartOffset())
	}
	checkLogHolds(t, reopened, 10, batches)
}

// TestInstallBelowRefuses: a log not empty, a start past the log's offset,
// overlapping batches and batches past the end change nothing.
func TestInstallBelowRefuses(t *testing.T) {
	fsys := vfs.NewMem()
	l, _ := truncationLog(t, fsys, "p")
	defer l.Close()
	if err := l.InstallBelow(0, pieces(nil), 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("install below a log holding data: %v", err)
	}
	end := l.NextOffset() + 100
	if err := l.Reset(end, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.InstallBelow(end+1, pieces(nil), 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("install from past the end: %v", err)
	}
	overlap := [][]byte{makeBatch(end-10, 2, 10, 0), makeBatch(end-9, 2, 10, 0)}
	past := [][]byte{makeBatch(end-1, 2, 10, 0)}
	below := [][]byte{makeBatch(end-23, 2, 10, 0)} // ends before the start, end-20
	for name, batches := range map[string][][]byte{"overlap": overlap, "past the end": past, "below the start": below} {
		if err := l.InstallBelow(end-20, pieces(batches), 0); !errors.Is(err, ErrInvalidBatches) {
			t.Fatalf("%s: %v, want ErrInvalidBatches", name, err)
		}
		if l.StartOffset() != end || l.NextOffset() != end || len(l.Segments()) != 1 {
			t.Fatalf("%s: the refused install left [%d, %d)", name, l.StartOffset(), l.NextOffset())
		}
	}
	// What a refused install wrote is below the start: a reopen removes it.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fsys, "p", truncationConfig(), 0)
	names, err := fsys.List("p")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if base, _, ok := parseSegmentFileName(n); ok && base < end {
			t.Fatalf("segment file %s of a refused install is left", n)
		}
	}
}

// TestInstallBelowCrash cuts the power at every step of an install: the
// recovered log is the empty one or the installed one, and takes appends.
func TestInstallBelowCrash(t *testing.T) {
	batches, end := gappedBatches(10, 9)
	for budget := 1; ; budget++ {
		if budget > 400 {
			t.Fatal("the install never completed")
		}
		cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
			Rand: rand.New(rand.NewPCG(uint64(budget), 13)), TearUnsynced: budget%2 == 0})
		l := emptyAt(t, cfs, end)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, cfs, "p", truncationConfig(), 0)
		cfs.CutAfter(budget)
		err := l.InstallBelow(10, pieces(batches), 0)
		completed := !cfs.Cut()
		if completed && err != nil {
			t.Fatalf("install without a crash: %v", err)
		}
		recovered, err := Open(cfs.Crash(), "p", truncationConfig(), 0)
		if err != nil {
			t.Fatalf("budget %d: open after the crash: %v", budget, err)
		}
		start := recovered.StartOffset()
		got := readAll(t, recovered, start)
		switch {
		case start == end && recovered.NextOffset() == end && len(got) == 0:
		case start == 10 && recovered.NextOffset() == end && equalBatches(got, batches):
		default:
			t.Fatalf("budget %d (completed %v): recovered [%d, %d) with %d batches", budget, completed, start, recovered.NextOffset(), len(got))
		}
		if completed && (start != 10 || budget < 10) {
			t.Fatalf("the install completed within %d steps, recovered at %d", budget, start)
		}
		got = append(got, appendN(t, recovered, 3, 2, 100, 3000)...)
		checkLogHolds(t, recovered, start, got)
		if err := recovered.Close(); err != nil {
			t.Fatal(err)
		}
		if completed {
			return
		}
	}
}
