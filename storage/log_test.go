package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestAppendReadRoundTrip proves batches come back byte for byte, from
// every offset, across segment rolls and across a reopen.
func TestAppendReadRoundTrip(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		var batches [][]byte
		for i := range 40 {
			batches = append(batches, appendN(t, l, 1, 1+i%5, 100, int64(i))...)
		}
		if len(l.Segments()) < 3 {
			t.Fatalf("expected several segments, got %d", len(l.Segments()))
		}
		check := func(l *Log) {
			if got := readAll(t, l, 0); !equalBatches(got, batches) {
				t.Fatalf("read back %d batches, want %d identical", len(got), len(batches))
			}
			for i, b := range batches {
				h := header(t, b)
				for offset := h.BaseOffset; offset <= h.LastOffset(); offset++ {
					data, err := l.Read(offset, 1, l.NextOffset())
					if err != nil || !bytes.Equal(data, b) {
						t.Fatalf("read offset %d: got %d bytes, err %v; want batch %d", offset, len(data), err, i)
					}
				}
			}
		}
		check(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		check(l)
	})
}

// TestAppendRejectsInvalidBatches proves bad input is refused and changes
// nothing.
func TestAppendRejectsInvalidBatches(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", testConfig(), 0)
	defer l.Close()
	appendN(t, l, 2, 3, 10, 0) // offsets 0..5
	corrupt := makeBatch(6, 1, 10, 0)
	corrupt[len(corrupt)-1] ^= 0xff
	tests := map[string][]byte{
		"empty":               nil,
		"gap":                 makeBatch(7, 1, 10, 0),
		"overlap":             makeBatch(5, 1, 10, 0),
		"bad crc":             corrupt,
		"torn":                makeBatch(6, 1, 10, 0)[:40],
		"second batch is gap": append(makeBatch(6, 1, 10, 0), makeBatch(8, 1, 10, 0)...),
	}
	for name, input := range tests {
		if err := l.Append(input, 0); !errors.Is(err, ErrInvalidBatches) {
			t.Errorf("%s: Append = %v, want ErrInvalidBatches", name, err)
		}
	}
	if l.NextOffset() != 6 || l.Segments()[0].SizeBytes != int64(2*len(makeBatch(0, 3, 10, 0))) {
		t.Fatalf("log changed: next %d segments %+v", l.NextOffset(), l.Segments())
	}
	if err := l.Append(append(makeBatch(6, 2, 10, 0), makeBatch(8, 1, 10, 0)...), 0); err != nil {
		t.Fatalf("two contiguous batches: %v", err)
	}
}

// TestRollBySize proves a segment never grows past SegmentBytes, except an
// oversized append into an empty segment.
func TestRollBySize(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", testConfig(), 0)
	defer l.Close()
	appendN(t, l, 30, 2, 200, 0)
	big := makeBatch(l.NextOffset(), 1, 6000, 0)
	if err := l.Append(big, 0); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1, 1, 10, 0)
	segments := l.Segments()
	for i, s := range segments {
		if s.SizeBytes > testConfig().SegmentBytes && s.SizeBytes != int64(len(big)) {
			t.Errorf("segment %d is %d bytes", i, s.SizeBytes)
		}
		if i > 0 && s.BaseOffset != segments[i-1].NextOffset {
			t.Errorf("segment %d starts at %d, previous ends at %d", i, s.BaseOffset, segments[i-1].NextOffset)
		}
		if s.Active != (i == len(segments)-1) {
			t.Errorf("segment %d active=%v", i, s.Active)
		}
	}
	if last := segments[len(segments)-2]; last.SizeBytes != int64(len(big)) {
		t.Errorf("oversized batch not alone in its segment: %+v", last)
	}
}

// TestRollByAge proves the active segment rolls once its first append is
// older than SegmentMs, and that CreatedMs is the first append's time.
func TestRollByAge(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentMs = 1000
	l := mustOpen(t, vfs.NewMem(), "p", cfg, 0)
	defer l.Close()
	appendN(t, l, 1, 1, 10, 5000)
	appendN(t, l, 1, 1, 10, 6000) // exactly SegmentMs later: not older yet
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("rolled too early: %d segments", n)
	}
	appendN(t, l, 1, 1, 10, 6001)
	segments := l.Segments()
	if len(segments) != 2 || segments[0].CreatedMs != 5000 || segments[1].CreatedMs != 6001 {
		t.Fatalf("segments %+v", segments)
	}
}

// TestReadLimits proves the maxBytes and maxOffset rules of Read.
func TestReadLimits(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", testConfig(), 0)
	defer l.Close()
	batches := appendN(t, l, 30, 2, 100, 0) // batch i holds offsets 2i, 2i+1
	size := len(batches[0])
	concat := func(from, to int) []byte { return bytes.Join(batches[from:to], nil) }
	tests := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		want      []byte
	}{
		{"first batch whole even when bigger than maxBytes", 3, 1, 60, concat(1, 2)},
		{"zero maxBytes still gives one batch", 3, 0, 60, concat(1, 2)},
		{"as many whole batches as fit", 0, 3*size + size/2, 60, concat(0, 3)},
		{"exact fit", 0, 3 * size, 60, concat(0, 3)},
		{"maxOffset stops at batch base", 0, 1 << 20, 6, concat(0, 3)},
		{"maxOffset inside a batch includes it", 0, 1 << 20, 7, concat(0, 4)},
		{"offset at maxOffset is empty", 6, 1 << 20, 6, nil},
		{"offset at the end is empty", 60, 1 << 20, 60, nil},
		{"across segments", 10, 1 << 20, 60, concat(5, 30)},
	}
	for _, tc := range tests {
		got, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: Read(%d, %d, %d) = %d bytes, %v; want %d bytes", tc.name, tc.offset, tc.maxBytes, tc.maxOffset, len(got), err, len(tc.want))
		}
		// The same read appended to a reused buffer: what the buffer held
		// stays and does not count against maxBytes, and stale spare
		// capacity is overwritten.
		dst := append(bytes.Repeat([]byte{0xEE}, 3*size), bytes.Repeat([]byte{0xDD}, 8*size)...)[:3*size]
		got, err = l.ReadAppend(dst, tc.offset, tc.maxBytes, tc.maxOffset)
		if err != nil || !bytes.Equal(got[:3*size], bytes.Repeat([]byte{0xEE}, 3*size)) || !bytes.Equal(got[3*size:], tc.want) {
			t.Errorf("%s: ReadAppend(%d, %d, %d) = %d bytes, %v; want the buffer's %d then %d bytes", tc.name, tc.offset, tc.maxBytes, tc.maxOffset, len(got), err, 3*size, len(tc.want))
		}
	}
	for _, offset := range []int64{-1, 61} {
		if _, err := l.Read(offset, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Read(%d) = %v, want ErrOffsetOutOfRange", offset, err)
		}
	}
}

// TestReadUsesSparseIndex proves a read deep inside a large segment reads
// about one index interval of the file, not the segment from its start,
// also after a reopen (index from files).
func TestReadUsesSparseIndex(t *testing.T) {
	counting := &countingFS{FS: vfs.NewMem()}
	cfg := Config{SegmentBytes: 8 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 4096}
	l := mustOpen(t, counting, "p", cfg, 0)
	batches := appendN(t, l, 20000, 1, 150, 0)
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("want one big segment, got %d", n)
	}
	check := func(l *Log) {
		for _, i := range []int{19990, 12345, 7} {
			before := counting.logBytesRead.Load()
			data, err := l.Read(int64(i), 1, l.NextOffset())
			if err != nil || !bytes.Equal(data, batches[i]) {
				t.Fatalf("read %d: %v", i, err)
			}
			if read := counting.logBytesRead.Load() - before; read > 2*readWindowBytes {
				t.Fatalf("read of offset %d read %d bytes of a %d-byte segment", i, read, l.Segments()[0].SizeBytes)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, counting, "p", cfg, 0)
	defer l.Close()
	check(l)
}

// TestFindTimestamp proves FindTimestamp returns the first batch reaching a
// timestamp, with timestamps out of order, across segments and a reopen,
// against a brute-force answer.
func TestFindTimestamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fsys := vfs.NewMem()
	cfg := Config{SegmentBytes: 3000, SegmentMs: 1 << 40, IndexIntervalBytes: 300}
	l := mustOpen(t, fsys, "p", cfg, 0)
	var batches [][]byte
	for i := range 200 {
		ts := int64(i*10) + rng.Int64N(200) - 100 // mostly rising, often out of order
		batches = append(batches, appendN(t, l, 1, 1+rng.IntN(3), 40, ts)...)
	}
	bruteForce := func(tsMs int64) []byte {
		for _, b := range batches {
			if header(t, b).MaxTimestamp >= tsMs {
				return b
			}
		}
		return nil
	}
	check := func(l *Log) {
		for ts := int64(-200); ts < 2300; ts += 7 {
			got, err := l.FindTimestamp(ts)
			want := bruteForce(ts)
			if want == nil {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("FindTimestamp(%d) = %v, want ErrNotFound", ts, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("FindTimestamp(%d): got batch at %d (err %v), want batch at %d", ts, baseOf(got), err, header(t, want).BaseOffset)
			}
		}
		maxTs, maxBase, err := l.MaxTimestamp()
		var wantTs, wantBase int64 = -1 << 62, 0
		for _, b := range batches {
			if h := header(t, b); h.MaxTimestamp > wantTs {
				wantTs, wantBase = h.MaxTimestamp, h.BaseOffset
			}
		}
		if err != nil || maxTs != wantTs || maxBase != wantBase {
			t.Fatalf("MaxTimestamp = %d at %d (%v), want %d at %d", maxTs, maxBase, err, wantTs, wantBase)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fsys, "p", cfg, 0)
	defer l.Close()
	check(l)
}

func baseOf(b []byte) int64 {
	if len(b) < 8 {
		return -1
	}
	return int64(uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7]))
}

// TestMaxTimestampEmpty proves an empty log has no max timestamp and no
// batch to find.
func TestMaxTimestampEmpty(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", testConfig(), 0)
	defer l.Close()
	if _, _, err := l.MaxTimestamp(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MaxTimestamp = %v", err)
	}
	if _, err := l.FindTimestamp(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindTimestamp = %v", err)
	}
}

// TestDeleteOldestSegment proves retention deletion advances the start
// offset durably, removes files, and rolls an active segment it must delete.
func TestDeleteOldestSegment(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		batches := appendN(t, l, 30, 2, 100, 0)
		before := l.Segments()
		if err := l.DeleteOldestSegment(0); err != nil {
			t.Fatal(err)
		}
		if l.StartOffset() != before[1].BaseOffset || len(l.Segments()) != len(before)-1 {
			t.Fatalf("start %d segments %d", l.StartOffset(), len(l.Segments()))
		}
		if _, err := l.Read(before[1].BaseOffset-1, 100, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below start: %v", err)
		}
		if _, err := fsys.Stat(l.segmentPath(before[0].BaseOffset, logSuffix)); err == nil {
			t.Fatal("deleted segment file still exists")
		}
		for len(l.Segments()) > 1 {
			if err := l.DeleteOldestSegment(0); err != nil {
				t.Fatal(err)
			}
		}
		// The only segment is active and holds batches: it rolls, then goes.
		if err := l.DeleteOldestSegment(0); err != nil {
			t.Fatal(err)
		}
		if got := l.Segments(); len(got) != 1 || got[0].SizeBytes != 0 || l.StartOffset() != l.NextOffset() {
			t.Fatalf("after deleting everything: start %d next %d segments %+v", l.StartOffset(), l.NextOffset(), got)
		}
		if err := l.DeleteOldestSegment(0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleting the empty active segment: %v", err)
		}
		next := l.NextOffset()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		if l.StartOffset() != next || l.NextOffset() != next {
			t.Fatalf("after reopen start %d next %d, want %d", l.StartOffset(), l.NextOffset(), next)
		}
		more := appendN(t, l, 1, 1, 10, 0)
		if got := readAll(t, l, next); !equalBatches(got, more) {
			t.Fatal("append after deleting everything not readable")
		}
		_ = batches
	})
}

// TestAdvanceStartOffset proves DeleteRecords semantics: the start moves
// inside a segment, lower offsets are out of range, segments wholly below go,
// and the new start survives a crash.
func TestAdvanceStartOffset(t *testing.T) {
	c := vfs.NewCrashFS()
	l := mustOpen(t, c, "p", testConfig(), 0)
	batches := appendN(t, l, 30, 2, 100, 0)
	segments := l.Segments()
	target := segments[2].BaseOffset + 1 // inside the third segment's first batch
	if err := l.AdvanceStartOffset(target); err != nil {
		t.Fatal(err)
	}
	if got := len(l.Segments()); got != len(segments)-2 {
		t.Fatalf("%d segments left, want %d", got, len(segments)-2)
	}
	if _, err := l.Read(target-1, 1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below new start: %v", err)
	}
	data, err := l.Read(target, 1, 100)
	if err != nil || header(t, data).BaseOffset != target-1 {
		t.Fatalf("read at start: base %d err %v", baseOf(data), err)
	}
	for _, bad := range []int64{target - 1, l.NextOffset() + 1} {
		if err := l.AdvanceStartOffset(bad); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("AdvanceStartOffset(%d) = %v", bad, err)
		}
	}
	// No Close: the new start must already be durable.
	l2 := mustOpen(t, c.Crash(vfs.CrashOptions{}), "p", testConfig(), 0)
	defer l2.Close()
	if l2.StartOffset() != target {
		t.Fatalf("start after crash %d, want %d", l2.StartOffset(), target)
	}
	if got := readAll(t, l2, target); !equalBatches(got, batches[target/2:]) {
		t.Fatal("content after crash differs")
	}
	if err := l2.AdvanceStartOffset(l2.NextOffset()); err != nil {
		t.Fatal(err)
	}
	if got, err := l2.Read(l2.NextOffset(), 100, 1<<40); err != nil || len(got) != 0 {
		t.Fatalf("read at end after advancing to it: %d bytes, %v", len(got), err)
	}
}

// TestReplaceSegment proves compaction replaces a sealed segment's batches,
// keeps its range, rebuilds its indexes and survives a reopen.
func TestReplaceSegment(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		batches := appendN(t, l, 30, 2, 100, 0)
		segment := l.Segments()[1]
		content, err := l.ReadSegment(segment.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		old := splitBatches(t, content)
		kept := [][]byte{old[1], old[len(old)-1]}
		if err := l.ReplaceSegment(segment.BaseOffset, bytes.Join(kept, nil)); err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		for _, b := range batches {
			h := header(t, b)
			inSegment := h.BaseOffset >= segment.BaseOffset && h.BaseOffset < segment.NextOffset
			if !inSegment || bytes.Equal(b, kept[0]) || bytes.Equal(b, kept[1]) {
				want = append(want, b)
			}
		}
		check := func(l *Log) {
			if got := readAll(t, l, 0); !equalBatches(got, want) {
				t.Fatalf("after compaction read %d batches, want %d", len(got), len(want))
			}
			// An offset compacted away reads from the next surviving batch.
			data, err := l.Read(segment.BaseOffset, 1, 1<<40)
			if err != nil || !bytes.Equal(data, kept[0]) {
				t.Fatalf("read compacted offset: %v", err)
			}
			got := l.Segments()[1]
			if got.BaseOffset != segment.BaseOffset || got.NextOffset != segment.NextOffset || got.SizeBytes != int64(len(kept[0])+len(kept[1])) {
				t.Fatalf("segment after compaction %+v", got)
			}
		}
		check(l)
		invalid := map[string][]byte{
			"outside range": makeBatch(segment.NextOffset, 1, 10, 0),
			"out of order":  bytes.Join([][]byte{kept[1], kept[0]}, nil),
		}
		for name, input := range invalid {
			if err := l.ReplaceSegment(segment.BaseOffset, input); !errors.Is(err, ErrInvalidBatches) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if err := l.ReplaceSegment(l.Segments()[len(l.Segments())-1].BaseOffset, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replacing the active segment: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, dir, testConfig(), 0)
		defer l.Close()
		check(l)
	})
}

// TestCleanRestartReadsNoBatchData proves Open after Close reads no .log
// bytes, and that Open then marks the log unclean.
func TestCleanRestartReadsNoBatchData(t *testing.T) {
	counting := &countingFS{FS: vfs.NewMem()}
	l := mustOpen(t, counting, "p", testConfig(), 0)
	batches := appendN(t, l, 50, 2, 100, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before := counting.logReads.Load()
	l = mustOpen(t, counting, "p", testConfig(), 0)
	if reads := counting.logReads.Load() - before; reads != 0 {
		t.Fatalf("clean open read .log files %d times", reads)
	}
	data, err := vfs.ReadFile(counting, "p/"+stateFileName)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := decodeState(data); err != nil || st.clean {
		t.Fatalf("state after open: clean=%v err=%v", st.clean, err)
	}
	defer l.Close()
	if got := readAll(t, l, 0); !equalBatches(got, batches) {
		t.Fatal("content differs after clean restart")
	}
}

// TestRecoveryAfterUncleanStop proves an unclean stop keeps everything
// written, and that a torn tail is truncated with indexes rebuilt.
func TestRecoveryAfterUncleanStop(t *testing.T) {
	filesystems(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, testConfig(), 0)
		batches := appendN(t, l, 20, 2, 100, 0)
		if err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, appendN(t, l, 10, 2, 100, 0)...)
		active := l.Segments()[len(l.Segments())-1]
		// Abandon l without Close, as a killed process would, then add a torn batch.
		f, err := fsys.OpenAppend(l.segmentPath(active.BaseOffset, logSuffix))
		if err != nil {
			t.Fatal(err)
		}
		torn := makeBatch(l.NextOffset(), 3, 100, 0)
		if _, err := f.Write(torn[:len(torn)-7]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		l2 := mustOpen(t, fsys, dir, testConfig(), 0)
		defer l2.Close()
		if got := readAll(t, l2, 0); !equalBatches(got, batches) {
			t.Fatalf("recovered %d batches, want %d", len(got), len(batches))
		}
		if size, _ := fsys.Stat(l.segmentPath(active.BaseOffset, logSuffix)); size != l2.Segments()[len(l2.Segments())-1].SizeBytes {
			t.Fatalf("torn tail not truncated: file %d bytes", size)
		}
		appendN(t, l2, 1, 1, 10, 0)
	})
}

// TestSetConfig proves a changed segment size applies to the next append
// and an invalid config is refused.
func TestSetConfig(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", testConfig(), 0)
	defer l.Close()
	appendN(t, l, 2, 1, 100, 0)
	if err := l.SetConfig(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("invalid config: %v", err)
	}
	cfg := testConfig()
	cfg.SegmentBytes = 100
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1, 1, 100, 0)
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments after shrinking SegmentBytes", n)
	}
}

// TestSetConfigBesideAppend: SetConfig runs beside appends (a topic's
// config changed while its replica appends; go test -race checks they
// share nothing unguarded), and a changed index interval applies to the
// active segment from the next append on.
func TestSetConfigBesideAppend(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 1 << 20}, 0)
	defer l.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; k < 100_000; k++ { // bounded; stopped after the appends
			select {
			case <-stop:
				return
			default:
			}
			_ = l.SetConfig(Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: int64(1<<20 + k)})
		}
	}()
	appendN(t, l, 100, 1, 100, 0)
	close(stop)
	<-done
	entries := func() int {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return len(l.active().offsets)
	}
	before := entries()
	if err := l.SetConfig(Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, 1, 100, 0)
	if got := entries(); got != before+3 {
		t.Fatalf("%d offset index entries after three appends at an interval of 1 byte, want %d", got, before+3)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestDelete proves Delete removes the directory, also for a closed log.
func TestDelete(t *testing.T) {
	fsys := vfs.NewMem()
	l := mustOpen(t, fsys, "topics/p0", testConfig(), 0)
	appendN(t, l, 3, 1, 10, 0)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if names, _ := fsys.List("topics"); slices.Contains(names, "p0") {
		t.Fatal("directory still there")
	}
	if _, err := l.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after delete: %v", err)
	}
	if err := l.Append(makeBatch(3, 1, 10, 0), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
}
