package storage

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestReset restarts a log of several segments at its end and past it:
// the log is empty there, takes appends from the new offset, and reopens
// the same; an offset below the end is refused.
func TestReset(t *testing.T) {
	for name, gap := range map[string]int64{"at the end": 0, "past the end": 1000} {
		t.Run(name, func(t *testing.T) {
			fsys := vfs.NewMem()
			l, _ := truncationLog(t, fsys, "p")
			end := l.NextOffset()
			if err := l.Reset(end-1, 0); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("Reset below the end: %v, want ErrOffsetOutOfRange", err)
			}
			at := end + gap
			if err := l.Reset(at, 5); err != nil {
				t.Fatal(err)
			}
			if l.StartOffset() != at || l.NextOffset() != at || len(l.Segments()) != 1 {
				t.Fatalf("after Reset(%d): [%d, %d) in %d segments", at, l.StartOffset(), l.NextOffset(), len(l.Segments()))
			}
			if _, err := l.Read(end-2, 1<<20, end); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below the new start: %v", err)
			}
			got := appendN(t, l, 20, 2, 100, 2000)
			checkLogHolds(t, l, at, got)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			reopened := mustOpen(t, fsys, "p", truncationConfig(), 0)
			defer reopened.Close()
			if reopened.StartOffset() != at {
				t.Fatalf("reopened start %d, want %d", reopened.StartOffset(), at)
			}
			checkLogHolds(t, reopened, at, got)
			names, err := fsys.List("p")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if base, _, ok := parseSegmentFileName(n); ok && base < at {
					t.Fatalf("segment file %s below the new start is left", n)
				}
			}
		})
	}
}

// TestResetCrash cuts the power at every step of a Reset past the end:
// the recovered log is the old one or the empty one at the new offset, and
// takes appends either way.
func TestResetCrash(t *testing.T) {
	for budget := 1; ; budget++ {
		if budget > 200 {
			t.Fatal("the reset never completed")
		}
		cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
			Rand: rand.New(rand.NewPCG(uint64(budget), 12)), TearUnsynced: budget%2 == 0})
		l, old := truncationLog(t, cfs, "p")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, cfs, "p", truncationConfig(), 0)
		at := l.NextOffset() + 500
		cfs.CutAfter(budget)
		err := l.Reset(at, 0)
		completed := !cfs.Cut()
		if completed && err != nil {
			t.Fatalf("Reset without a crash: %v", err)
		}
		recovered, err := Open(cfs.Crash(), "p", truncationConfig(), 0)
		if err != nil {
			t.Fatalf("budget %d: open after the crash: %v", budget, err)
		}
		start := recovered.StartOffset()
		got := readAll(t, recovered, start)
		switch {
		case start == at && recovered.NextOffset() == at && len(got) == 0:
		case start == 0 && !completed && equalBatches(got, old):
		default:
			t.Fatalf("budget %d (completed %v): recovered [%d, %d) with %d batches", budget, completed, start, recovered.NextOffset(), len(got))
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

// TestResetConcurrentReads resets a log between appends while a reader
// reads from its start (run with -race): a read returns whole, contiguous
// batches of one generation of the log, never the end of one followed by
// the start of the next, or ErrOffsetOutOfRange.
func TestResetConcurrentReads(t *testing.T) {
	l := mustOpen(t, vfs.NewMem(), "p", truncationConfig(), 0)
	defer l.Close()
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			data, err := l.Read(l.StartOffset(), 1<<20, l.NextOffset())
			if errors.Is(err, ErrOffsetOutOfRange) {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			if err := checkOneGeneration(data); err != nil {
				done <- err
				return
			}
		}
	}()
	for generation := range 30 {
		// The generation is every batch's timestamp.
		for range 1 + generation%7 {
			if err := l.Append(makeBatch(l.NextOffset(), 2, 100, int64(generation)), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Reset(l.NextOffset()+int64(generation%2), 0); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// checkOneGeneration checks that data holds contiguous batches all
// stamped with the same first timestamp.
func checkOneGeneration(data []byte) error {
	var next, ts int64 = -1, -1
	for len(data) > 0 {
		h, _, rest, err := batch.Next(data)
		if err != nil {
			return err
		}
		if next >= 0 && (h.BaseOffset != next || h.FirstTimestamp != ts) {
			return fmt.Errorf("batch at %d of generation %d after one ending at %d of generation %d", h.BaseOffset, h.FirstTimestamp, next, ts)
		}
		next, ts, data = h.NextOffset(), h.FirstTimestamp, rest
	}
	return nil
}
