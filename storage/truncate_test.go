package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cairnlog/cairn/batch"
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
// afterwards. A truncation that returned is durable. Where compaction left
// gaps after the cut, the old log may come back only up to the first gap
// (see TruncateSuffix).
func TestTruncateSuffixCrash(t *testing.T) {
	targets := map[string]struct {
		compact bool // drop every other batch of the first segment first
		offset  func(l *Log) int64
	}{
		"inside the active segment":           {offset: func(l *Log) int64 { return l.NextOffset() - 6 }},
		"in the first segment":                {offset: func(l *Log) int64 { return 6 }},
		"at a segment base":                   {offset: func(l *Log) int64 { return l.Segments()[1].BaseOffset }},
		"at the start":                        {offset: func(l *Log) int64 { return 0 }},
		"in a compacted segment, before gaps": {compact: true, offset: func(l *Log) int64 { return 8 }},
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			for budget := 1; ; budget++ {
				if budget > 200 {
					t.Fatal("the truncation never completed")
				}
				completed := crashDuringTruncation(t, budget, target.compact, target.offset)
				if completed {
					return
				}
			}
		})
	}
}

// compactFirstSegment replaces the first segment with its even batches
// and returns the batches the log then holds.
func compactFirstSegment(t testing.TB, l *Log, batches [][]byte) [][]byte {
	t.Helper()
	first := l.Segments()[0]
	var kept []byte
	var holds [][]byte
	for i, b := range batches {
		if base := header(t, b).BaseOffset; base < first.NextOffset && i%2 == 1 {
			continue
		}
		if header(t, b).BaseOffset < first.NextOffset {
			kept = append(kept, b...)
		}
		holds = append(holds, b)
	}
	if err := l.ReplaceSegment(first.BaseOffset, kept); err != nil {
		t.Fatal(err)
	}
	return holds
}

// crashDuringTruncation builds a synced log whose recovery point lags
// behind its end, cuts the power at the budget-th call of a truncation and
// checks the recovered log. It reports whether the truncation completed
// before the budget ran out.
func crashDuringTruncation(t *testing.T, budget int, compact bool, target func(l *Log) int64) (completed bool) {
	t.Helper()
	cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
		Rand: rand.New(rand.NewPCG(uint64(budget), 11)), TearUnsynced: budget%2 == 0})
	l, old := truncationLog(t, cfs, "p")
	if compact {
		old = compactFirstSegment(t, l, old)
	}
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	old = append(old, appendN(t, l, 4, 2, 100, 1500)...)
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	offset := target(l)
	prefix := prefixBefore(t, old, offset)
	cfs.CutAfter(budget)
	err := l.TruncateSuffix(offset)
	completed = !cfs.Cut()
	if completed && err != nil {
		t.Fatalf("TruncateSuffix(%d) without a crash: %v", offset, err)
	}
	recovered, err := Open(cfs.Crash(), "p", truncationConfig(), 0)
	if err != nil {
		t.Fatalf("budget %d: open after the crash: %v", budget, err)
	}
	got := readAll(t, recovered, 0)
	switch {
	case equalBatches(got, prefix):
	case equalBatches(got, old) && !completed:
	case compact && !completed && len(got) > len(prefix) && equalBatches(got, old[:len(got)]):
		// Recovery validates what follows the recovery point, the cut, and
		// stops at the first compaction gap: the old log up to there.
	default:
		t.Fatalf("budget %d (completed %v): recovered %d batches, want the old %d or the prefix of %d",
			budget, completed, len(got), len(old), len(prefix))
	}
	checkLogHolds(t, recovered, 0, got)
	got = append(got, appendN(t, recovered, 12, 2, 100, 3000)...)
	if err := recovered.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := mustOpen(t, cfs.Crash(), "p", truncationConfig(), 0)
	defer reopened.Close()
	checkLogHolds(t, reopened, 0, got)
	return completed
}

// TestTruncateSuffixFaults injects a failure into each step of a
// truncation: a failed fsync, truncate, remove or index rewrite makes the
// log failed (ErrFailed) and reopening gives the old log or the prefix; a
// failure to write the state file, before anything was cut, is a plain
// error and leaves the log as it was and usable.
func TestTruncateSuffixFaults(t *testing.T) {
	const offset = 6 // in the first segment, so later segments go
	tests := []struct {
		name       string
		rule       vfs.Rule
		unsynced   bool // append a batch the truncation's first sync must cover
		wantFailed bool
		want       string // what reopening gives: "old", "prefix" or "either"
	}{
		{"sync before the cut", vfs.Rule{Op: vfs.OpSync, PathContains: logSuffix}, true, true, "old"},
		{"state file create", vfs.Rule{Op: vfs.OpCreate, PathContains: stateFileName}, false, false, "old"},
		{"state file sync", vfs.Rule{Op: vfs.OpSync, PathContains: stateFileName}, false, true, "old"},
		{"directory sync of the state file", vfs.Rule{Op: vfs.OpSyncDir}, false, true, "either"},
		{"truncate", vfs.Rule{Op: vfs.OpTruncate, PathContains: logSuffix}, false, true, "old"},
		{"sync of the cut segment", vfs.Rule{Op: vfs.OpSync, PathContains: logSuffix}, false, true, "either"},
		{"remove of a later segment", vfs.Rule{Op: vfs.OpRemove, PathContains: logSuffix}, false, true, "prefix"},
		{"directory sync after the removals", vfs.Rule{Op: vfs.OpSyncDir, After: 1}, false, true, "prefix"},
		{"index cut", vfs.Rule{Op: vfs.OpTruncate, PathContains: offsetIndexSuffix}, false, true, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := vfs.NewErrorFS(vfs.NewMem())
			l, old := truncationLog(t, e, "p")
			if err := l.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if tt.unsynced {
				old = append(old, appendN(t, l, 1, 2, 100, 1500)...)
			}
			prefix := prefixBefore(t, old, offset)
			tt.rule.Err = syscall.EIO
			remove := e.Inject(tt.rule)
			err := l.TruncateSuffix(offset)
			remove()
			if err == nil || errors.Is(err, ErrFailed) != tt.wantFailed {
				t.Fatalf("TruncateSuffix = %v, want an error (failed: %v)", err, tt.wantFailed)
			}
			if tt.wantFailed {
				if err := l.Append(makeBatch(l.NextOffset(), 1, 10, 0), 0); !errors.Is(err, ErrFailed) {
					t.Fatalf("Append on the failed log = %v, want ErrFailed", err)
				}
				_ = l.Close()
			} else {
				checkLogHolds(t, l, 0, old)
				old = append(old, appendN(t, l, 2, 2, 100, 1600)...)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			reopened := mustOpen(t, e, "p", truncationConfig(), 0)
			defer reopened.Close()
			got := readAll(t, reopened, 0)
			isOld, isPrefix := equalBatches(got, old), equalBatches(got, prefix)
			if !(tt.want == "old" && isOld || tt.want == "prefix" && isPrefix || tt.want == "either" && (isOld || isPrefix)) {
				t.Fatalf("reopened log holds %d batches, want %s (old %d, prefix %d)", len(got), tt.want, len(old), len(prefix))
			}
			checkLogHolds(t, reopened, 0, got)
			appendN(t, reopened, 1, 1, 10, 0)
		})
	}
}

// cutModel is what the concurrent truncation test knows of every batch it
// appended: how many cuts had completed when it was appended, and the cut
// that removed it (0 while it is in the log).
type cutModel struct {
	cuts    atomic.Uint64 // truncations completed
	batches sync.Map      // string(batch bytes) -> *modelEntry
}

type modelEntry struct {
	base        int64
	appendedAt  uint64
	removedByID atomic.Uint64
}

// TestTruncateSuffixRacingReads runs readers and a flusher while the single
// writer appends and cuts the log at random batch boundaries. Every read
// returns batches that were in the log at some moment during it (never one
// a cut that completed before the read began removed), contiguous, never
// old batches followed by ones appended after a cut, or else
// ErrOffsetOutOfRange; Sync never reports more than the log holds after a
// cut (run with -race).
func TestTruncateSuffixRacingReads(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", Config{SegmentBytes: 2048, SegmentMs: 1 << 40, IndexIntervalBytes: 128}, 0)
	defer l.Close()
	model := &cutModel{}
	runWriterSyncerReaders(t, l,
		func() error { return cuttingWriter(l, model) },
		func(reader uint64) error { return cutReader(l, model, reader) })
}

// cuttingWriter appends unique batches and now and then cuts the log at a
// random batch boundary, recording what each cut removed once it returned.
func cuttingWriter(l *Log, model *cutModel) error {
	rng := rand.New(rand.NewPCG(1, 2))
	var live []*modelEntry
	for i := range 400 {
		b := makeBatch(l.NextOffset(), 1+i%3, 60, int64(i))
		entry := &modelEntry{base: l.NextOffset(), appendedAt: model.cuts.Load()}
		model.batches.Store(string(b), entry)
		if err := l.Append(b, int64(i)); err != nil {
			return err
		}
		live = append(live, entry)
		if i%10 != 9 {
			continue
		}
		keep := len(live) - 1 - rng.IntN(min(len(live), 25))
		offset := live[keep].base
		if err := l.TruncateSuffix(offset); err != nil {
			return fmt.Errorf("truncate at %d: %w", offset, err)
		}
		cut := model.cuts.Load() + 1
		for _, e := range live[keep:] {
			e.removedByID.Store(cut)
		}
		live = live[:keep]
		model.cuts.Store(cut)
		if synced, err := l.Sync(); err != nil || synced > l.NextOffset() {
			return fmt.Errorf("Sync after the cut at %d = %d, %v", offset, synced, err)
		}
	}
	return nil
}

// cutReader reads random ranges, checking each against the model.
func cutReader(l *Log, model *cutModel, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 9))
	for range 1500 {
		cutsBefore := model.cuts.Load()
		start, next := l.StartOffset(), l.NextOffset()
		offset := start + rng.Int64N(next-start+1)
		data, err := l.Read(offset, 1+rng.IntN(6000), next)
		if errors.Is(err, ErrOffsetOutOfRange) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %d: %w", offset, err)
		}
		if err := checkCutRead(model, data, cutsBefore); err != nil {
			return fmt.Errorf("read %d: %w", offset, err)
		}
	}
	return nil
}

func checkCutRead(model *cutModel, data []byte, cutsBefore uint64) error {
	expected := int64(-1)
	latestAppend, earliestRemoval := uint64(0), uint64(1<<63)
	for len(data) > 0 {
		h, whole, rest, err := batch.Next(data)
		if err != nil {
			return err
		}
		value, ok := model.batches.Load(string(whole))
		if !ok {
			return fmt.Errorf("batch at %d was never appended", h.BaseOffset)
		}
		entry := value.(*modelEntry)
		removedBy := entry.removedByID.Load()
		if removedBy != 0 && removedBy <= cutsBefore {
			return fmt.Errorf("batch at %d was cut by truncation %d, before the read began", h.BaseOffset, removedBy)
		}
		if expected >= 0 && h.BaseOffset != expected {
			return fmt.Errorf("batch at %d follows one ending at %d", h.BaseOffset, expected)
		}
		latestAppend = max(latestAppend, entry.appendedAt)
		if removedBy != 0 {
			earliestRemoval = min(earliestRemoval, removedBy)
		}
		expected, data = h.NextOffset(), rest
	}
	if latestAppend >= earliestRemoval {
		return fmt.Errorf("a batch removed by cut %d read together with one appended after it", earliestRemoval)
	}
	return nil
}

// pausingFS pauses the first read of a .log file other than the first
// segment's until resumed, telling the test when it got there.
type pausingFS struct {
	vfs.FS
	reached chan struct{}
	resume  chan struct{}
	once    sync.Once
}

func (p *pausingFS) Create(name string) (vfs.File, error) {
	f, err := p.FS.Create(name)
	if err != nil || !strings.HasSuffix(name, logSuffix) || strings.HasSuffix(name, segmentFileName(0, logSuffix)) {
		return f, err
	}
	return &pausingFile{File: f, fs: p}, nil
}

type pausingFile struct {
	vfs.File
	fs *pausingFS
}

func (f *pausingFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.once.Do(func() {
		close(f.fs.reached)
		<-f.fs.resume
	})
	return f.File.ReadAt(b, off)
}

// TestReadStartsOverWhenCutBetweenSegments pauses a read spanning every
// segment in its second segment, cuts the log inside the first one (already
// read) and appends past the old end meanwhile: the read must not return the
// old first segment followed by the batches appended after the cut. It
// starts over and returns the log as it is.
func TestReadStartsOverWhenCutBetweenSegments(t *testing.T) {
	p := &pausingFS{FS: vfs.NewMem(), reached: make(chan struct{}), resume: make(chan struct{})}
	l := mustOpen(t, p, "p", Config{SegmentBytes: 2048, SegmentMs: 1 << 40, IndexIntervalBytes: 128}, 0)
	defer l.Close()
	old := appendN(t, l, 40, 2, 60, 0)
	if len(l.Segments()) < 4 {
		t.Fatalf("segments %+v, want at least 4", l.Segments())
	}
	type result struct {
		data []byte
		err  error
	}
	read := make(chan result)
	go func() {
		data, err := l.Read(0, 1<<20, 1<<40)
		read <- result{data, err}
	}()
	<-p.reached
	cut := header(t, old[len(old)/8]).BaseOffset // inside the first segment
	if cut >= l.Segments()[1].BaseOffset {
		t.Fatalf("cut %d is not in the first segment", cut)
	}
	if err := l.TruncateSuffix(cut); err != nil {
		t.Fatal(err)
	}
	oldNext := header(t, old[len(old)-1]).NextOffset()
	for l.NextOffset() <= oldNext {
		appendN(t, l, 1, 2, 60, 5000) // other content at the old offsets
	}
	close(p.resume)
	got := <-read
	if got.err != nil {
		t.Fatal(got.err)
	}
	if want := readAll(t, l, 0); !equalBatches(splitBatches(t, got.data), want) {
		t.Fatalf("read returned %d batches, want the %d the log holds after the cut", len(splitBatches(t, got.data)), len(want))
	}
}

// TestCutIndexFile proves an index file that begins with the kept entries
// is cut to them, and any other file is rewritten to hold exactly them.
func TestCutIndexFile(t *testing.T) {
	entries := []byte("0123456789abcdef")
	tests := map[string][]byte{
		"longer, same start":  []byte("0123456789abcdef-more-entries"),
		"exactly the entries": entries,
		"longer, other start": []byte("X123456789abcdef-more-entries"),
		"shorter":             []byte("01234567"),
		"empty":               nil,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			fsys := vfs.NewMem()
			f, err := fsys.Create("index")
			if err != nil {
				t.Fatal(err)
			}
			if err := writeAll(f, content); err != nil {
				t.Fatal(err)
			}
			if err := cutIndexFile(f, entries); err != nil {
				t.Fatal(err)
			}
			if err := writeAll(f, []byte("+")); err != nil { // appends continue at the end
				t.Fatal(err)
			}
			if got, _ := vfs.ReadFile(fsys, "index"); string(got) != string(entries)+"+" {
				t.Fatalf("file holds %q, want %q", got, string(entries)+"+")
			}
		})
	}
}
