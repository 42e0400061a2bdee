package storage

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// truncationConfig spaces index entries several batches apart, so the
// largest timestamp before a cut is not always in the time index.
func truncationConfig() Config {
	return Config{SegmentBytes: 4096, SegmentMs: 1 << 40, IndexIntervalBytes: 1000}
}

// truncationLog appends 30 batches of 2 records (about 3 segments), each
// with its own timestamp so the largest timestamp changes with the cut,
// and the odd ones slightly older so not every batch raises the maximum.
func truncationLog(t testing.TB, fsys vfs.FS, dir string) (*Log, [][]byte) {
	t.Helper()
	l := mustOpen(t, fsys, dir, truncationConfig(), 0)
	var batches [][]byte
	for i := range 30 {
		tsMs := int64(1000 + 10*i - 15*(i%2))
		b := makeBatch(l.NextOffset(), 2, 100, tsMs)
		if err := l.Append(b, 0); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(l.Segments()))
	}
	return l, batches
}

// prefixBefore returns the batches below offset.
func prefixBefore(t testing.TB, batches [][]byte, offset int64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, b := range batches {
		if header(t, b).BaseOffset < offset {
			out = append(out, b)
		}
	}
	return out
}

// checkLogHolds checks that l holds exactly batches from start on, that its
// segments are contiguous and that the timestamp lookups agree with them.
func checkLogHolds(t testing.TB, l *Log, start int64, batches [][]byte) {
	t.Helper()
	if got := readAll(t, l, start); !equalBatches(got, batches) {
		t.Fatalf("log holds %d batches, want %d identical", len(got), len(batches))
	}
	if err := checkSegments(l); err != nil {
		t.Fatal(err)
	}
	if active := l.Segments()[len(l.Segments())-1]; l.ActiveBase() != active.BaseOffset {
		t.Fatalf("ActiveBase %d, active segment %+v", l.ActiveBase(), active)
	}
	wantMaxMs, wantBase := int64(-1), int64(-1)
	for _, b := range batches {
		if h := header(t, b); h.MaxTimestamp > wantMaxMs {
			wantMaxMs, wantBase = h.MaxTimestamp, h.BaseOffset
		}
	}
	gotMaxMs, gotBase, err := l.MaxTimestamp()
	if len(batches) > 0 && (err != nil || gotMaxMs != wantMaxMs || gotBase != wantBase) {
		t.Fatalf("MaxTimestamp = %d at %d (%v), want %d at %d", gotMaxMs, gotBase, err, wantMaxMs, wantBase)
	}
	for tsMs := int64(990); tsMs <= 1300; tsMs += 7 {
		var want []byte
		for _, b := range batches {
			if header(t, b).MaxTimestamp >= tsMs {
				want = b
				break
			}
		}
		got, err := l.FindTimestamp(tsMs)
		if want == nil && errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil || !equalBatches([][]byte{got}, [][]byte{want}) {
			t.Fatalf("FindTimestamp(%d) = batch at %d (%v), want batch at %d", tsMs, baseOf(got), err, baseOf(want))
		}
	}
}

// TestTruncateSuffix proves the cut for each place it can land: the log
// ends at the offset, reads, indexes and timestamps agree with the prefix,
// Sync never reports more than exists, appends continue there, and all of
// it survives a reopen. Offsets that are not batch boundaries in range are
// refused and change nothing.
func TestTruncateSuffix(t *testing.T) {
	type target func(l *Log) int64
	// segment returns segment i, counting from the end when negative.
	segment := func(l *Log, i int) SegmentInfo {
		segments := l.Segments()
		if i < 0 {
			i += len(segments)
		}
		return segments[i]
	}
	segmentBase := func(i int) target { return func(l *Log) int64 { return segment(l, i).BaseOffset } }
	inside := func(i int) target { // a batch boundary in the middle of segment i
		return func(l *Log) int64 {
			s := segment(l, i)
			middle := (s.BaseOffset + s.NextOffset) / 2
			return middle - middle%2
		}
	}
	tests := []struct {
		name    string
		start   int64 // the start offset is advanced here first
		offset  target
		wantErr error
	}{
		{name: "inside the active segment", offset: inside(-1)},
		{name: "across rolls into the first segment", offset: inside(0)},
		{name: "inside a middle segment", offset: inside(1)},
		{name: "at a segment base", offset: segmentBase(1)},
		{name: "at the active segment base", offset: segmentBase(-1)},
		{name: "at the start offset", start: 4, offset: func(*Log) int64 { return 4 }},
		{name: "at offset zero", offset: func(*Log) int64 { return 0 }},
		{name: "at the next offset", offset: func(l *Log) int64 { return l.NextOffset() }},
		{name: "inside a batch", offset: func(*Log) int64 { return 7 }, wantErr: ErrNotBatchBoundary},
		{name: "below the start", start: 4, offset: func(*Log) int64 { return 2 }, wantErr: ErrOffsetOutOfRange},
		{name: "above the end", offset: func(l *Log) int64 { return l.NextOffset() + 2 }, wantErr: ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
				l, batches := truncationLog(t, fsys, dir)
				defer func() { _ = l.Close() }()
				if err := l.AdvanceStartOffset(tt.start); err != nil {
					t.Fatal(err)
				}
				batches = batches[tt.start/2:]
				offset := tt.offset(l)
				err := l.TruncateSuffix(offset)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) || errors.Is(err, ErrFailed) {
						t.Fatalf("TruncateSuffix(%d) = %v, want %v", offset, err, tt.wantErr)
					}
					checkLogHolds(t, l, tt.start, batches)
					return
				}
				if err != nil {
					t.Fatalf("TruncateSuffix(%d): %v", offset, err)
				}
				checkTruncated(t, l, fsys, dir, tt.start, offset, prefixBefore(t, batches, offset))
			})
		})
	}
}

func checkTruncated(t *testing.T, l *Log, fsys vfs.FS, dir string, start, offset int64, kept [][]byte) {
	t.Helper()
	if l.NextOffset() != offset {
		t.Fatalf("NextOffset %d after the cut, want %d", l.NextOffset(), offset)
	}
	checkLogHolds(t, l, start, kept)
	if _, err := l.Read(offset+2, 1<<20, 1<<40); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past the cut: %v, want ErrOffsetOutOfRange", err)
	}
	if synced, err := l.Sync(); err != nil || synced != offset {
		t.Fatalf("Sync = %d, %v; want %d", synced, err, offset)
	}
	more := appendN(t, l, 20, 2, 100, 2000) // rolls again
	kept = append(kept, more...)
	checkLogHolds(t, l, start, kept)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, fsys, dir, truncationConfig(), 0)
	defer reopened.Close()
	if reopened.StartOffset() != start {
		t.Fatalf("start offset %d after reopen, want %d", reopened.StartOffset(), start)
	}
	checkLogHolds(t, reopened, start, kept)
}

// TestTruncateSuffixCrash cuts the power before each filesystem call a
// truncation makes (so right after each of its syncs too), with and
// without torn unsynced writes, and proves the log recovers as it was or as
// the truncated prefix, never as corruption or a mixture, and takes appends
// afterwards. A truncation that returned is durable.
func TestTruncateSuffixCrash(t *testing.T) {
	targets := map[string]func(l *Log) int64{
		"inside the active segment": func(l *Log) int64 { return l.NextOffset() - 6 },
		"in the first segment":      func(l *Log) int64 { return 6 },
		"at a segment base":         func(l *Log) int64 { return l.Segments()[1].BaseOffset },
		"at the start":              func(l *Log) int64 { return 0 },
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			for budget := 1; ; budget++ {
				if budget > 200 {
					t.Fatal("the truncation never completed")
				}
				completed := crashDuringTruncation(t, budget, target)
				if completed {
					return
				}
			}
		})
	}
}

// crashDuringTruncation builds a synced log whose recovery point lags
// behind its end, cuts the power at the budget-th call of a truncation and
// checks the recovered log. It reports whether the truncation completed
// before the budget ran out.
func crashDuringTruncation(t *testing.T, budget int, target func(l *Log) int64) (completed bool) {
	t.Helper()
	cfs := &crashingFS{inner: vfs.NewCrashFS(), budget: 1 << 30, opts: vfs.CrashOptions{
		Rand: rand.New(rand.NewPCG(uint64(budget), 11)), TearUnsynced: budget%2 == 0}}
	l, old := truncationLog(t, cfs, "p")
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	old = append(old, appendN(t, l, 4, 2, 100, 1500)...)
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	offset := target(l)
	prefix := prefixBefore(t, old, offset)
	cfs.mu.Lock()
	cfs.budget = cfs.calls + budget
	cfs.mu.Unlock()
	err := l.TruncateSuffix(offset)
	completed = !cfs.crashed()
	if completed && err != nil {
		t.Fatalf("TruncateSuffix(%d) without a crash: %v", offset, err)
	}
	recovered, err := Open(cfs.crash(), "p", truncationConfig(), 0)
	if err != nil {
		t.Fatalf("budget %d: open after the crash: %v", budget, err)
	}
	got := readAll(t, recovered, 0)
	switch {
	case equalBatches(got, prefix):
	case equalBatches(got, old) && !completed:
	default:
		t.Fatalf("budget %d (completed %v): recovered %d batches, want the old %d or the prefix of %d",
			budget, completed, len(got), len(old), len(prefix))
	}
	checkLogHolds(t, recovered, 0, got)
	got = append(got, appendN(t, recovered, 12, 2, 100, 3000)...)
	if err := recovered.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, cfs.crash(), "p", truncationConfig(), 0)
	defer reopened.Close()
	checkLogHolds(t, reopened, 0, got)
	return completed
}
