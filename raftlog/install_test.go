package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// stagedInstall is a follower's log behind a leader and the snapshot the
// leader sends, with the data below it the leader holds.
type stagedInstall struct {
	m           *model
	applied     uint64
	snap        *raftpb.Snapshot
	staged      StagedSnapshot
	data        []byte
	start, next int64
}

// followerBehind appends entries to l past an applied index and picks a
// snapshot past its end whose data (with gaps) starts below its end.
func followerBehind(t *testing.T, l *Log, rng *rand.Rand) stagedInstall {
	t.Helper()
	m := fillPastApplied(t, l)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	start := rng.Int64N(m.end + 1)
	data, next := stagedData(t, rng, start)
	next = max(next, m.end)
	idx, term := m.last()+1+rng.Uint64N(5), m.termAt(m.last())+1
	desc := &Descriptor{LogStartOffset: start, NextOffset: next, Terms: []TermStart{{Term: term, Index: idx, Offset: next}}}
	return stagedInstall{m: m, applied: pastApplied, snap: snapshotAt(idx, term, desc),
		staged: StagedSnapshot{Index: idx, Term: term, LogStartOffset: start, NextOffset: next},
		data:   data, start: start, next: next}
}

// stage copies the data below the snapshot into the staging directory.
func (s stagedInstall) stage(t *testing.T, fsys vfs.FS) {
	t.Helper()
	st, err := OpenStaging(fsys, "p", s.staged)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Add(s.data, s.next); err != nil {
		t.Fatal(err)
	}
	if err := st.Complete(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkInstalled checks the log is the snapshot with the staged data below
// it in the segments and no staging directory left.
func (s stagedInstall) checkInstalled(t *testing.T, fsys vfs.FS, l *Log) error {
	t.Helper()
	idx := s.snap.GetMetadata().GetIndex()
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if first != idx+1 || last != idx {
		return fmt.Errorf("entries [%d, %d], want the snapshot at %d", first, last, idx)
	}
	if st := l.storage; st.StartOffset() != s.start || st.NextOffset() != s.next {
		return fmt.Errorf("segments [%d, %d), want [%d, %d)", st.StartOffset(), st.NextOffset(), s.start, s.next)
	}
	var got []byte
	for at := s.start; at < s.next; {
		chunk, err := readChunk(l.storage, at, 1<<20)
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			break
		}
		batches := splitAll(t, chunk)
		got, at = append(got, chunk...), batches[len(batches)-1].NextOffset()
	}
	if !bytes.Equal(got, s.data) {
		return fmt.Errorf("segments hold %d bytes below the snapshot, want the %d staged", len(got), len(s.data))
	}
	if _, err := fsys.List(StagingDir("p")); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("staging directory left after the install: %v", err)
	}
	checkInstalledState(t, l, s.snap)
	return nil
}

// TestApplySnapshotInstallsStagedCopy installs snapshots whose data was
// staged whole: the segments hold that data from the descriptor's log
// start, with its gaps, the staging directory goes, appends continue at
// the next offset, and a reopen finds the same. A staged copy of another
// snapshot is not used: the segments restart empty, as without a copy.
func TestApplySnapshotInstallsStagedCopy(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 21))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			s := followerBehind(t, l, rng)
			other := s
			other.staged.Term++
			if seed%2 == 1 {
				other.stage(t, fsys)
				s.start = s.next // not this snapshot's copy: reset empty
				s.data = nil
			} else {
				s.stage(t, fsys)
			}
			if err := l.ApplySnapshot(s.snap, 0); err != nil {
				t.Fatal(err)
			}
			if seed%2 == 1 {
				// The other snapshot's copy stays until the next Open.
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openLog(t, fsys)
			}
			if err := s.checkInstalled(t, fsys, l); err != nil {
				t.Fatal(err)
			}
			s.m.installed(t, s.snap, s.next)
			term := s.snap.GetMetadata().GetTerm() + 1
			more, begins, end := s.m.build(t, s.m.last()+1, []spec{{kind: 'e', term: term}, {kind: 'd', term: term, records: 2, valueBytes: 9}})
			if err := l.Append(more, 0); err != nil {
				t.Fatal(err)
			}
			s.m.apply(t, more, begins, end)
			matches(t, l, s.m)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, fsys)
			matches(t, l, s.m)
		})
	}
}

// TestApplySnapshotRequiresStagedData: a log told to install only with the
// data (RequireStagedData) refuses a snapshot with data below it while no
// complete copy of that snapshot's data is staged (none, another
// snapshot's, or one not complete), writing nothing, and installs it once
// the copy is complete. A snapshot with no data below it needs no copy.
func TestApplySnapshotRequiresStagedData(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 23))
			fsys := vfs.NewMem()
			l := createLog(t, fsys)
			defer func() { l.Close() }()
			l.RequireStagedData()
			s := followerBehind(t, l, rng)
			if s.start == s.next {
				s.start = 0 // followerBehind may pick no data below; this test wants some
				s.data, s.next = stagedData(t, rng, 0)
				s.next = max(s.next, s.m.end)
				d, _ := DecodeDescriptor(s.snap.GetData())
				d.LogStartOffset, d.NextOffset, d.Terms[0].Offset = 0, s.next, s.next
				md := s.snap.GetMetadata()
				s.snap = snapshotAt(md.GetIndex(), md.GetTerm(), &d)
				s.staged.LogStartOffset, s.staged.NextOffset = 0, s.next
			}
			switch seed % 3 {
			case 1:
				other := s
				other.staged.Term++
				other.stage(t, fsys)
			case 2:
				st, err := OpenStaging(fsys, "p", s.staged)
				if err != nil {
					t.Fatal(err)
				}
				h, _, _, err := batch.Next(s.data) // the first batch only
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Add(s.data[:h.TotalBytes()], h.NextOffset()); err != nil {
					t.Fatal(err)
				}
				if err := st.Close(); err != nil { // not Complete
					t.Fatal(err)
				}
			}
			err := l.ApplySnapshot(s.snap, 0)
			if !errors.Is(err, ErrSnapshotDataMissing) {
				t.Fatalf("install without the staged data: %v, want ErrSnapshotDataMissing", err)
			}
			matches(t, l, s.m)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, fsys)
			matches(t, l, s.m)
			l.RequireStagedData()
			if seed%3 == 2 {
				// The copy resumes where it stopped.
				st, err := OpenStaging(fsys, "p", s.staged)
				if err != nil {
					t.Fatal(err)
				}
				h, _, rest, err := batch.Next(s.data)
				if err != nil {
					t.Fatal(err)
				}
				if st.Next() != h.NextOffset() {
					t.Fatalf("the copy resumes at %d, want %d", st.Next(), h.NextOffset())
				}
				if err := st.Add(rest, s.next); err != nil {
					t.Fatal(err)
				}
				if err := st.Complete(); err != nil {
					t.Fatal(err)
				}
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				s.stage(t, fsys)
			}
			if err := l.ApplySnapshot(s.snap, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.checkInstalled(t, fsys, l); err != nil {
				t.Fatal(err)
			}
			// Nothing below the next snapshot: nothing to copy.
			idx, term := s.snap.GetMetadata().GetIndex()+3, s.snap.GetMetadata().GetTerm()+1
			end := s.next + 5
			empty := snapshotAt(idx, term, &Descriptor{LogStartOffset: end, NextOffset: end, Terms: []TermStart{{Term: term, Index: idx, Offset: end}}})
			if err := l.ApplySnapshot(empty, 0); err != nil {
				t.Fatalf("a snapshot with no data below it: %v", err)
			}
			if st := l.storage; st.StartOffset() != end || st.NextOffset() != end {
				t.Fatalf("segments [%d, %d) after the empty snapshot, want [%d, %d)", st.StartOffset(), st.NextOffset(), end, end)
			}
		})
	}
}

// TestApplySnapshotStagedCrash cuts the power at every step of an
// install from a staged copy: Open gives the old log (possibly cut above
// the applied index) or the snapshot with the staged data below it and
// no staging directory, and the log takes appends either way.
//
// In the second case the old segments span exactly the offsets the staged
// copy fills ([log start, next offset)), holding other data: Open must
// not take them for the install done.
func TestApplySnapshotStagedCrash(t *testing.T) {
	t.Run("behind", func(t *testing.T) {
		stagedCrash(t, func(t *testing.T, l *Log) stagedInstall { return followerBehind(t, l, rand.New(rand.NewPCG(7, 7))) })
	})
	t.Run("old segments spanning the copy", func(t *testing.T) { stagedCrash(t, followerSpanningCopy) })
}

// followerSpanningCopy is followerBehind with a snapshot whose staged copy
// starts where the log does and ends, with a gap, where the log ends.
func followerSpanningCopy(t *testing.T, l *Log) stagedInstall {
	t.Helper()
	s := followerBehind(t, l, rand.New(rand.NewPCG(7, 7)))
	start := l.storage.StartOffset()
	for seed := uint64(1); ; seed++ {
		if seed > 1000 {
			t.Fatalf("no staged copy fits below the log's end %d", s.m.end)
		}
		data, end := stagedData(t, rand.New(rand.NewPCG(seed, 9)), start)
		if end >= s.m.end {
			continue
		}
		s.data, s.start, s.next = data, start, s.m.end
		idx, term := s.snap.GetMetadata().GetIndex(), s.snap.GetMetadata().GetTerm()
		desc := &Descriptor{LogStartOffset: start, NextOffset: s.next, Terms: []TermStart{{Term: term, Index: idx, Offset: s.next}}}
		s.snap = snapshotAt(idx, term, desc)
		s.staged = StagedSnapshot{Index: idx, Term: term, LogStartOffset: start, NextOffset: s.next}
		return s
	}
}

// stagedCrash is TestApplySnapshotStagedCrash for the install pick makes.
func stagedCrash(t *testing.T, pick func(t *testing.T, l *Log) stagedInstall) {
	for budget := 1; ; budget++ {
		if budget > 400 {
			t.Fatal("the install never completed")
		}
		cfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{
			Rand: rand.New(rand.NewPCG(uint64(budget), 5)), TearUnsynced: budget%2 == 0})
		l := createLog(t, cfs)
		s := pick(t, l)
		s.stage(t, cfs)
		cfs.CutAfter(budget)
		err := l.ApplySnapshot(s.snap, 0)
		completed := !cfs.Cut()
		if completed && err != nil {
			t.Fatalf("ApplySnapshot without a crash: %v", err)
		}
		after := cfs.Crash()
		l, err = Open(after, "p", testCfg, 0)
		if err != nil {
			t.Fatalf("budget %d: open after the crash: %v", budget, err)
		}
		first, _ := l.FirstIndex()
		last, _ := l.LastIndex()
		term := s.snap.GetMetadata().GetTerm()
		switch {
		case first == testBoot.Index+1 && !completed && last >= s.applied && last <= s.m.last():
			got, err := l.Entries(first, last+1, 1<<30)
			if err != nil || !sameEntries(got, s.m.ents[:last-testBoot.Index]) {
				t.Fatalf("budget %d: the old log holds %s (%v), want a prefix of %s", budget, show(got), err, show(s.m.ents))
			}
			s.m.mem = newModel(t).mem
			s.m.apply(t, s.m.ents[:last-testBoot.Index], s.m.begins[:last-testBoot.Index], s.m.beginOf(last+1))
		default:
			if err := s.checkInstalled(t, after, l); err != nil {
				t.Fatalf("budget %d (completed %v): %v", budget, completed, err)
			}
			s.m.installed(t, s.snap, s.next)
		}
		matches(t, l, s.m)
		more, begins, end := s.m.build(t, s.m.last()+1, []spec{{kind: 'e', term: term + 1}, {kind: 'd', term: term + 1, records: 2, valueBytes: 9}})
		if err := l.Append(more, 0); err != nil {
			t.Fatalf("budget %d: append after the crash: %v", budget, err)
		}
		s.m.apply(t, more, begins, end)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, after.Crash(vfs.CrashOptions{}))
		matches(t, l, s.m)
		l.Close()
		if completed {
			if budget < 10 {
				t.Fatalf("the install completed within %d steps", budget)
			}
			return
		}
	}
}

// splitAll parses concatenated batches' headers.
func splitAll(t *testing.T, b []byte) []batch.Header {
	t.Helper()
	var out []batch.Header
	for len(b) > 0 {
		h, _, rest, err := batch.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		out, b = append(out, h), rest
	}
	return out
}

// TestStagingComplete: a copy whose last piece is a gap reopens short of
// the next offset until Complete marks it, then whole; Complete refuses a
// copy not done.
func TestStagingComplete(t *testing.T) {
	fsys := vfs.NewMem()
	data, _ := stagedData(t, rand.New(rand.NewPCG(1, 1)), 0)
	end := lastBatchEnd(t, data, math.MaxInt64)
	snap := StagedSnapshot{Index: 9, Term: 2, LogStartOffset: 0, NextOffset: end + 5}
	s, err := OpenStaging(fsys, stagingTestDir, snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(data, end); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Complete before the next offset: %v", err)
	}
	if err := s.Add(nil, snap.NextOffset); err != nil {
		t.Fatal(err)
	}
	reopen := func() *Staging {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := OpenStaging(fsys, stagingTestDir, snap)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s = reopen(); s.Done() || s.Next() != end {
		t.Fatalf("reopened unmarked copy at %d (done %v), want %d", s.Next(), s.Done(), end)
	}
	if ok, err := hasStagedCopy(fsys, stagingTestDir, snap); ok || err != nil {
		t.Fatalf("unmarked copy taken for whole: %v %v", ok, err)
	}
	if err := s.Add(nil, snap.NextOffset); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	if s = reopen(); !s.Done() {
		t.Fatalf("reopened complete copy at %d, want done", s.Next())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := hasStagedCopy(fsys, stagingTestDir, snap); !ok || err != nil {
		t.Fatalf("complete copy not found: %v %v", ok, err)
	}
	if !bytes.Equal(stagedBytes(t, fsys), data) {
		t.Fatal("the staged data changed")
	}
}

// hasStagedCopy says the staging directory of the log in dir holds the
// whole data below snap.
func hasStagedCopy(fsys vfs.FS, dir string, snap StagedSnapshot) (bool, error) {
	s, ok, err := openStagedCopy(fsys, dir, snap)
	if err != nil || !ok {
		return false, err
	}
	return true, s.Close()
}

// TestDamagedCompleteCopy: a bad batch in a complete staged copy (synced
// whole before its marker) is damage, not a torn write: the install
// refuses it rather than put the batches before it under the segments
// and drop the committed ones after it, and OpenStaging copies again. A
// log that installs only with the data (RequireStagedData) refuses it as
// ErrSnapshotDataMissing, as without a copy.
func TestDamagedCompleteCopy(t *testing.T) {
	for _, stagedOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("stagedOnly=", stagedOnly), func(t *testing.T) { damagedCompleteCopy(t, stagedOnly) })
	}
}

func damagedCompleteCopy(t *testing.T, stagedOnly bool) {
	fsys := vfs.NewMem()
	l := createLog(t, fsys)
	defer l.Close()
	if stagedOnly {
		l.RequireStagedData()
	}
	s := followerBehind(t, l, rand.New(rand.NewPCG(7, 7)))
	s.stage(t, fsys)
	name := filepath.Join(StagingDir("p"), stagingDataName)
	data, err := vfs.ReadFile(fsys, name)
	if err != nil || len(data) < 200 {
		t.Fatalf("staged data of %d bytes: %v", len(data), err)
	}
	data[len(data)/2] ^= 0x20
	if err := vfs.WriteFileAtomic(fsys, name, data); err != nil {
		t.Fatal(err)
	}
	var corrupt *storage.CorruptionError
	err = l.ApplySnapshot(s.snap, 0)
	if stagedOnly && (!errors.Is(err, ErrSnapshotDataMissing) || errors.As(err, &corrupt)) {
		t.Fatalf("ApplySnapshot over a damaged complete copy: %v, want ErrSnapshotDataMissing only", err)
	}
	if !stagedOnly && !errors.As(err, &corrupt) {
		t.Fatalf("ApplySnapshot over a damaged complete copy: %v, want a storage.CorruptionError", err)
	}
	if first, _ := l.FirstIndex(); first != testBoot.Index+1 {
		t.Fatalf("the log starts at entry %d after the refused install, want %d", first, testBoot.Index+1)
	}
	st, err := OpenStaging(fsys, "p", s.staged)
	if err != nil {
		t.Fatalf("OpenStaging over a damaged complete copy: %v", err)
	}
	defer st.Close()
	if st.Next() != s.start || st.Done() {
		t.Fatalf("OpenStaging resumes at %d (done %v), want a copy started again at %d", st.Next(), st.Done(), s.start)
	}
}

// gatedFS holds the first segment file created once armed until release
// is closed, telling entered: an install held midway.
type gatedFS struct {
	vfs.FS
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedFS) Create(name string) (vfs.File, error) {
	if strings.HasSuffix(name, ".log") && g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
	return g.FS.Create(name)
}

// TestOpenStagingWaitsForAnInstall: a copy of a newer snapshot opening
// the staging directory while an install from it is under way waits for
// the install, which removes the directory at its end; the newer copy
// then stages whole and stays. Opened at once, it started again in the
// directory the install was reading, and the install's removal took the
// newer copy, whose snapshot Raft then installed with nothing below it
// (TestSimulatedClusterCompacted seed 2009: a renewed replica's log start
// jumped from 10 to 241).
func TestOpenStagingWaitsForAnInstall(t *testing.T) {
	g := &gatedFS{FS: vfs.NewMem(), entered: make(chan struct{}), release: make(chan struct{})}
	l := createLog(t, g)
	defer l.Close()
	s := followerBehind(t, l, rand.New(rand.NewPCG(3, 21)))
	s.stage(t, g)
	g.armed.Store(true)
	installed := make(chan error, 1)
	go func() { installed <- l.ApplySnapshot(s.snap, 0) }()
	<-g.entered

	newer := s.staged
	newer.Index, newer.Term = newer.Index+1, newer.Term+1
	type opened struct {
		st  *Staging
		err error
	}
	openedCh := make(chan opened, 1)
	go func() {
		st, err := l.OpenStaging(newer)
		openedCh <- opened{st, err}
	}()
	select {
	case o := <-openedCh:
		close(g.release)
		t.Fatalf("the staging directory opened (%v) while an install read it", o.err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	if err := <-installed; err != nil {
		t.Fatal(err)
	}
	o := <-openedCh
	if o.err != nil {
		t.Fatal(o.err)
	}
	if err := o.st.Add(s.data, s.next); err != nil {
		t.Fatal(err)
	}
	if err := o.st.Complete(); err != nil {
		t.Fatal(err)
	}
	if err := o.st.Close(); err != nil {
		t.Fatal(err)
	}
	again, ok, err := openStagedCopy(g, "p", newer)
	if err != nil || !ok {
		t.Fatalf("the newer snapshot's complete copy is gone after the install (%v)", err)
	}
	again.Close()
}
