package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// closedLogWithSegments returns a filesystem holding a cleanly closed log
// with several segments, and its batches.
func closedLogWithSegments(t *testing.T) (vfs.FS, [][]byte, []SegmentInfo) {
	fsys := vfs.NewMem()
	l := mustOpen(t, fsys, "p", testConfig(), 0)
	batches := appendN(t, l, 30, 2, 100, 0)
	segments := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return fsys, batches, segments
}

func truncateFile(t *testing.T, fsys vfs.FS, name string, by int64) int64 {
	t.Helper()
	f, err := fsys.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	if err := f.Truncate(size - by); err != nil {
		t.Fatal(err)
	}
	return size - by
}

// TestCorruptionBeforeRecoveryPoint proves damage to synced data is
// reported as *CorruptionError and left on disk for an operator, never
// truncated away.
func TestCorruptionBeforeRecoveryPoint(t *testing.T) {
	name := func(base int64, suffix string) string { return "p/" + segmentFileName(base, suffix) }
	tests := map[string]func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) (checkName string){
		"active segment shorter than the recovery point": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			n := name(segments[len(segments)-1].BaseOffset, logSuffix)
			truncateFile(t, fsys, n, 10)
			return n
		},
		"sealed segment missing": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			for _, suffix := range []string{logSuffix, offsetIndexSuffix, timeIndexSuffix} {
				if err := fsys.Remove(name(segments[1].BaseOffset, suffix)); err != nil {
					t.Fatal(err)
				}
			}
			return name(segments[2].BaseOffset, logSuffix)
		},
		"sealed segment shorter than its index": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			n := name(segments[1].BaseOffset, logSuffix)
			truncateFile(t, fsys, n, segments[1].SizeBytes-100)
			return n
		},
		"state file damaged": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			data, _ := vfs.ReadFile(fsys, "p/"+stateFileName)
			data[10] ^= 0xff
			if err := vfs.WriteFileAtomic(fsys, "p/"+stateFileName, data); err != nil {
				t.Fatal(err)
			}
			return name(segments[0].BaseOffset, logSuffix)
		},
		"state file missing with segments present": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			if err := fsys.Remove("p/" + stateFileName); err != nil {
				t.Fatal(err)
			}
			return name(segments[0].BaseOffset, logSuffix)
		},
		"flipped byte before the recovery point, indexes lost": func(t *testing.T, fsys vfs.FS, segments []SegmentInfo) string {
			active := segments[len(segments)-1].BaseOffset
			n := name(active, logSuffix)
			data, _ := vfs.ReadFile(fsys, n)
			data[100] ^= 0xff
			if err := vfs.WriteFileAtomic(fsys, n, data); err != nil {
				t.Fatal(err)
			}
			for _, suffix := range []string{offsetIndexSuffix, timeIndexSuffix} {
				if err := fsys.Remove(name(active, suffix)); err != nil {
					t.Fatal(err)
				}
			}
			return n
		},
	}
	for testName, damage := range tests {
		t.Run(testName, func(t *testing.T) {
			fsys, _, segments := closedLogWithSegments(t)
			checkName := damage(t, fsys, segments)
			before, _ := vfs.ReadFile(fsys, checkName)
			_, err := Open(fsys, "p", testConfig(), 0)
			if !isCorruption(err) {
				t.Fatalf("Open = %v, want *CorruptionError", err)
			}
			after, _ := vfs.ReadFile(fsys, checkName)
			if !bytes.Equal(before, after) {
				t.Fatalf("Open changed %s from %d to %d bytes", checkName, len(before), len(after))
			}
		})
	}
}

// TestReadRefusesBatchOutOfPlace proves that a batch moved by a bit flip
// in its base offset, which its CRC does not cover, fails a read as
// corrupt (the partition then goes offline and is renewed) where it used
// to end the read early as if the log ended there. Open does not read
// batches before the recovery point, so only a read finds it.
func TestReadRefusesBatchOutOfPlace(t *testing.T) {
	tests := map[string]func(next int64) int64{
		// A flip in bits 8-15 of a small offset.
		"past the segment's end":     func(next int64) int64 { return next + 256 },
		"back over the batch before": func(int64) int64 { return 1 },
	}
	for testName, moved := range tests {
		t.Run(testName, func(t *testing.T) {
			fsys := vfs.NewMem()
			// One segment without index entries, as a small log has: every
			// read scans from the segment's first batch.
			cfg := Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 1 << 20}
			l := mustOpen(t, fsys, "p", cfg, 0)
			batches := appendN(t, l, 10, 2, 100, 0)
			next := l.NextOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			name := "p/" + segmentFileName(0, logSuffix)
			data, err := vfs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			third := len(batches[0]) + len(batches[1])
			binary.BigEndian.PutUint64(data[third:], uint64(moved(next)))
			if err := vfs.WriteFileAtomic(fsys, name, data); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, fsys, "p", cfg, 0)
			defer l.Close()
			for _, from := range []int64{0, 2, 8} {
				if got, err := l.Read(from, 1<<20, next); !errors.Is(err, batch.ErrCorrupt) {
					t.Fatalf("Read(%d) = %d bytes, %v; want batch.ErrCorrupt", from, len(got), err)
				}
			}
		})
	}
}

// TestVerifyFindsDamageOpenDoesNotRead proves Verify refuses what Open
// lets pass, damage before the recovery point (a flipped record byte, a
// moved batch), and passes an intact log of several segments whose start
// lies inside one.
func TestVerifyFindsDamageOpenDoesNotRead(t *testing.T) {
	tests := map[string]func(data []byte, second int){
		"intact":           nil,
		"record byte":      func(data []byte, second int) { data[second+80] ^= 0x10 },
		"batch moved":      func(data []byte, second int) { data[second+6] ^= 0x40 },
		"length shortened": func(data []byte, second int) { data[second+11] ^= 0x01 },
	}
	for testName, damage := range tests {
		t.Run(testName, func(t *testing.T) {
			fsys := vfs.NewMem()
			l := mustOpen(t, fsys, "p", testConfig(), 0)
			batches := appendN(t, l, 30, 2, 100, 0)
			segments := l.Segments()
			if len(segments) < 3 {
				t.Fatalf("%d segments, want several", len(segments))
			}
			if err := l.AdvanceStartOffset(3); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if damage != nil {
				name := "p/" + segmentFileName(segments[1].BaseOffset, logSuffix)
				data, err := vfs.ReadFile(fsys, name)
				if err != nil {
					t.Fatal(err)
				}
				damage(data, len(batches[0]))
				if err := vfs.WriteFileAtomic(fsys, name, data); err != nil {
					t.Fatal(err)
				}
			}
			l = mustOpen(t, fsys, "p", testConfig(), 0)
			defer l.Close()
			err := l.Verify()
			if damage == nil && err != nil {
				t.Fatalf("Verify = %v on an intact log", err)
			}
			if damage != nil && !isCorruption(err) {
				t.Fatalf("Verify = %v, want *CorruptionError", err)
			}
		})
	}
}

// TestDamageAfterRecoveryPointIsTruncated proves a damaged batch after the
// recovery point is a torn tail: the log is cut before it, later segments
// go, and Open succeeds.
func TestDamageAfterRecoveryPointIsTruncated(t *testing.T) {
	fsys := vfs.NewMem()
	l := mustOpen(t, fsys, "p", testConfig(), 0)
	kept := appendN(t, l, 5, 2, 100, 0)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 30, 2, 100, 0) // rolls into later segments, never checkpointed
	if len(l.Segments()) < 3 {
		t.Fatal("want later segments")
	}
	first := l.Segments()[0]
	n := l.segmentPath(first.BaseOffset, logSuffix)
	data, _ := vfs.ReadFile(fsys, n)
	data[5*len(kept[0])+70] ^= 0xff // inside the sixth batch
	if err := vfs.WriteFileAtomic(fsys, n, data); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, fsys, "p", testConfig(), 0)
	defer l2.Close()
	if got := readAll(t, l2, 0); !equalBatches(got, kept) || len(l2.Segments()) != 1 {
		t.Fatalf("recovered %d batches in %d segments, want %d in 1", len(got), len(l2.Segments()), len(kept))
	}
}

// TestFailedSyncIsPermanent proves a failed fsync makes the log refuse
// every later mutation and Sync, even when the disk recovers, while reads
// keep working, and that reopening recovers.
func TestFailedSyncIsPermanent(t *testing.T) {
	inner := vfs.NewMem()
	e := vfs.NewErrorFS(inner)
	l := mustOpen(t, e, "p", testConfig(), 0)
	batches := appendN(t, l, 3, 1, 10, 0)
	synced, err := l.Sync()
	if err != nil || synced != 3 {
		t.Fatalf("Sync = %d, %v", synced, err)
	}
	appendN(t, l, 1, 1, 10, 0)
	remove := e.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: logSuffix, Err: syscall.EIO})
	if _, err := l.Sync(); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v, want ErrFailed wrapping EIO", err)
	}
	remove()
	if _, err := l.Sync(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync after the disk recovered = %v, want ErrFailed", err)
	}
	checks := map[string]error{
		"append":     l.Append(makeBatch(l.NextOffset(), 1, 10, 0), 0),
		"checkpoint": l.Checkpoint(),
		"delete":     l.DeleteOldestSegment(0),
		"advance":    l.AdvanceStartOffset(1),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrFailed) {
			t.Errorf("%s = %v, want ErrFailed", name, err)
		}
	}
	if got := readAll(t, l, 0); len(got) != 4 {
		t.Fatalf("reads on a failed log: %d batches", len(got))
	}
	if err := l.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close = %v, want ErrFailed", err)
	}
	l = mustOpen(t, e, "p", testConfig(), 0)
	defer l.Close()
	if got := readAll(t, l, 0); len(got) < len(batches) {
		t.Fatalf("reopened log lost synced batches: %d", len(got))
	}
}

// TestFullDisk proves an append failing with ENOSPC, whether part of it
// landed or none, leaves the log as before and usable once space returns,
// for the .log file and for each index.
func TestFullDisk(t *testing.T) {
	for _, target := range []string{logSuffix, offsetIndexSuffix, timeIndexSuffix} {
		t.Run("half lands/"+target, func(t *testing.T) {
			e := vfs.NewErrorFS(vfs.NewMem())
			testFullDisk(t, e, func() func() {
				return e.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: target, Err: syscall.ENOSPC})
			})
		})
		t.Run("nothing lands/"+target, func(t *testing.T) {
			n := &noLandFS{FS: vfs.NewMem()}
			testFullDisk(t, n, func() func() {
				n.failOn.Store(&target)
				return func() { n.failOn.Store(nil) }
			})
		})
	}
}

func testFullDisk(t *testing.T, fsys vfs.FS, fill func() (free func())) {
	cfg := Config{SegmentBytes: 1 << 20, SegmentMs: 1 << 40, IndexIntervalBytes: 0} // every batch indexed
	l := mustOpen(t, fsys, "p", cfg, 0)
	batches := appendN(t, l, 5, 2, 100, 10)
	sizeBefore := l.Segments()[0].SizeBytes
	free := fill()
	// A rising timestamp so the time index is written too.
	err := l.Append(makeBatch(l.NextOffset(), 2, 100, 1000), 0)
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, ErrFailed) {
		t.Fatalf("Append on a full disk = %v, want ENOSPC and not failed", err)
	}
	if l.NextOffset() != 10 || l.Segments()[0].SizeBytes != sizeBefore {
		t.Fatalf("log changed: next %d size %d", l.NextOffset(), l.Segments()[0].SizeBytes)
	}
	if size, _ := fsys.Stat(l.segmentPath(0, logSuffix)); size != sizeBefore {
		t.Fatalf("segment file is %d bytes, want %d", size, sizeBefore)
	}
	free()
	batches = append(batches, appendN(t, l, 2, 2, 100, 2000)...)
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fsys, "p", cfg, 0)
	defer l.Close()
	if got := readAll(t, l, 0); !equalBatches(got, batches) {
		t.Fatalf("after reopen %d batches, want %d", len(got), len(batches))
	}
	if found, err := l.FindTimestamp(2000); err != nil || header(t, found).BaseOffset != 10 {
		t.Fatalf("time index after full disk: %v", err)
	}
}

// TestFullDiskUndoFails proves a log that cannot cut back a failed write
// becomes failed.
func TestFullDiskUndoFails(t *testing.T) {
	e := vfs.NewErrorFS(vfs.NewMem())
	l := mustOpen(t, e, "p", testConfig(), 0)
	appendN(t, l, 1, 1, 10, 0)
	e.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: logSuffix, Err: syscall.ENOSPC})
	e.Inject(vfs.Rule{Op: vfs.OpTruncate, Err: syscall.EIO})
	if err := l.Append(makeBatch(1, 1, 10, 0), 0); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append = %v, want ErrFailed wrapping ENOSPC", err)
	}
}

// TestConcurrentReadsSyncAndMutations runs readers, a syncer and a writer
// that rolls, compacts and deletes segments at once, proving reads return
// correct data or ErrOffsetOutOfRange and nothing else (run with -race).
func TestConcurrentReadsSyncAndMutations(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", Config{SegmentBytes: 2048, SegmentMs: 1 << 40, IndexIntervalBytes: 128}, 0)
	defer l.Close()
	var appended sync.Map // base offset -> batch bytes
	runWriterSyncerReaders(t, l,
		func() error { return concurrentWriter(l, &appended) },
		func(reader uint64) error { return concurrentReader(l, &appended, reader) })
}

// runWriterSyncerReaders runs the single writer, a flusher syncing in a
// loop until the writer returns, and three readers, and waits for all of
// them; any error fails t.
func runWriterSyncerReaders(t *testing.T, l *Log, writer func() error, reader func(reader uint64) error) {
	t.Helper()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		if err := writer(); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() { // the flusher
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for r := range 3 {
		wg.Go(func() {
			if err := reader(uint64(r)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func concurrentWriter(l *Log, appended *sync.Map) error {
	for i := range 600 {
		b := makeBatch(l.NextOffset(), 1+i%3, 60, int64(i))
		appended.Store(l.NextOffset(), b)
		if err := l.Append(b, int64(i)); err != nil {
			return err
		}
		var err error
		switch {
		case i%50 == 49:
			err = l.DeleteOldestSegment(int64(i))
		case i%30 == 15:
			err = compactOldest(l)
		case i%20 == 0:
			err = l.Checkpoint()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// concurrentReader reads random offsets; every batch it gets must be one
// that was appended, byte for byte.
func concurrentReader(l *Log, appended *sync.Map, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	for range 2000 {
		start, next := l.StartOffset(), l.NextOffset()
		offset := start + rng.Int64N(next-start+1)
		data, err := l.Read(offset, 500, next)
		if errors.Is(err, ErrOffsetOutOfRange) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %d: %w", offset, err)
		}
		for len(data) > 0 {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("read %d: %w", offset, err)
			}
			if want, ok := appended.Load(h.BaseOffset); !ok || !bytes.Equal(want.([]byte), whole) {
				return fmt.Errorf("read %d returned a batch never appended", offset)
			}
			data = rest
		}
		l.Segments()
		if _, err := l.FindTimestamp(rng.Int64N(600)); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("find timestamp: %w", err)
		}
	}
	return nil
}

// compactOldest replaces the oldest sealed segment with every other batch.
func compactOldest(l *Log) error {
	segments := l.Segments()
	if len(segments) < 2 {
		return nil
	}
	content, err := l.ReadSegment(segments[0].BaseOffset)
	if err != nil {
		return err
	}
	var kept []byte
	for i := 0; len(content) > 0; i++ {
		_, whole, rest, err := batch.Next(content)
		if err != nil {
			return err
		}
		if i%2 == 0 {
			kept = append(kept, whole...)
		}
		content = rest
	}
	return l.ReplaceSegment(segments[0].BaseOffset, kept)
}

// TestReadRacingDeletion proves a reader holding a segment that retention
// deletes still reads its data or gets ErrOffsetOutOfRange, and that the
// file closes once the reader lets go.
func TestReadRacingDeletion(t *testing.T) {
	fsys := vfs.NewMem()
	l := mustOpen(t, fsys, "p", testConfig(), 0)
	batches := appendN(t, l, 30, 2, 100, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fsys, "p", testConfig(), 0) // sealed indexes load lazily now
	defer l.Close()
	held, _, _, err := l.acquireFrom(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteOldestSegment(0); err != nil {
		t.Fatal(err)
	}
	view := held[0]
	r, _, err := findSegmentRange(view, 0, 0, 1<<40, 1<<20, 0)
	var data []byte
	if err == nil {
		data, err = appendFileRange(nil, r.s, r.start, r.end)
	}
	if err != nil || !bytes.Equal(data, bytes.Join(batches[:len(splitBatches(t, data))], nil)) {
		t.Fatalf("read of a deleted segment still held: %v", err)
	}
	if _, err := l.floorPosition(view, 3); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("index of a deleted segment: %v, want ErrOffsetOutOfRange", err)
	}
	held.release()
	if _, err := view.s.log.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("file still open after the last reference went")
	}
}
