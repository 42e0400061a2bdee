package raftlog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

const stagingTestDir = "t-0"

// stagedData is the data below a snapshot as a leader holds it: batches
// from start with gaps (compaction), then maybe a gap up to next.
func stagedData(t testing.TB, rng *rand.Rand, start int64) ([]byte, int64) {
	var out []byte
	at := start
	for range 5 + rng.IntN(20) {
		at += int64(rng.IntN(3))
		b := stampedBatch(t, at, spec{term: 3, records: 1 + rng.IntN(3), valueBytes: rng.IntN(80)})
		h, _ := batch.ParseHeader(b)
		out, at = append(out, b...), h.NextOffset()
	}
	return out, at + int64(rng.IntN(3))
}

// leaderPiece answers a read at offset as the leader does: the batches
// based at or after it within maxBytes (the first whole), and where the
// next read starts.
func leaderPiece(t testing.TB, data []byte, at, next int64, maxBytes int) ([]byte, int64) {
	var out []byte
	end := next
	for rest := data; len(rest) > 0; {
		h, whole, after, err := batch.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = after
		if h.BaseOffset < at {
			continue
		}
		if len(out) > 0 && len(out)+len(whole) > maxBytes {
			break
		}
		out, end = append(out, whole...), h.NextOffset()
	}
	if len(out) == 0 {
		return nil, next
	}
	return out, end
}

// stagedBytes is the staging directory's data file.
func stagedBytes(t *testing.T, fsys vfs.FS) []byte {
	t.Helper()
	f, err := fsys.Open(filepath.Join(StagingDir(stagingTestDir), stagingDataName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && size > 0 {
		t.Fatal(err)
	}
	return b
}

// TestStagingResumesAfterCrashes copies the data below a snapshot in
// random pieces, syncing now and then, through power cuts that tear
// unsynced writes: each reopen resumes at a batch boundary at or past
// what was synced, the file always a prefix of the data, and the copy
// completes with exactly the data.
func TestStagingResumesAfterCrashes(t *testing.T) {
	for seed := uint64(1); seed <= 24; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			data, next := stagedData(t, rng, 100)
			snap := StagedSnapshot{Index: 40, Term: 3, LogStartOffset: 100, NextOffset: next}
			fsys := vfs.NewCrashFS()
			synced := snap.LogStartOffset
			for crashes := 0; ; crashes++ {
				if crashes > 200 {
					t.Fatal("copy not done after 200 crashes")
				}
				s, err := OpenStaging(fsys, stagingTestDir, snap)
				if err != nil {
					t.Fatal(err)
				}
				got := stagedBytes(t, fsys)
				if s.Next() < synced || !bytes.HasPrefix(data, got) {
					t.Fatalf("reopened at %d (synced %d) with %d bytes, not a prefix of the data", s.Next(), synced, len(got))
				}
				if done := copySome(t, s, rng, data, &synced); done {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if got := stagedBytes(t, fsys); !bytes.Equal(got, data) {
						t.Fatalf("copy holds %d bytes, the data %d", len(got), len(data))
					}
					return
				}
				fsys = fsys.Crash(vfs.CrashOptions{Rand: rng, TearUnsynced: true})
			}
		})
	}
}

// copySome adds random pieces until the copy is done (then it syncs and
// returns true) or a random point where the power is cut.
func copySome(t *testing.T, s *Staging, rng *rand.Rand, data []byte, synced *int64) bool {
	t.Helper()
	for !s.Done() {
		if rng.IntN(4) == 0 {
			return false
		}
		piece, next := leaderPiece(t, data, s.Next(), s.snap.NextOffset, 1+rng.IntN(400))
		if err := s.Add(piece, next); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			*synced = lastBatchEnd(t, data, s.Next())
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return true
}

// lastBatchEnd is the end of the last batch of data ending at or below
// at: where a reopen resumes after a sync at at (a gap after it is asked
// for again).
func lastBatchEnd(t *testing.T, data []byte, at int64) int64 {
	var end int64
	for rest := data; len(rest) > 0; {
		h, _, after, err := batch.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		if h.NextOffset() > at {
			break
		}
		end, rest = h.NextOffset(), after
	}
	return end
}

// TestStagingStartsAgain: another snapshot, or a damaged meta file, makes
// the copy start over, empty; a power cut at every step of a start leaves
// a directory that opens, at the log start, empty.
func TestStagingStartsAgain(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	data, next := stagedData(t, rng, 100)
	snap := StagedSnapshot{Index: 40, Term: 3, LogStartOffset: 100, NextOffset: next, Sender: 2}
	fsys := vfs.NewCrashFS()
	s, err := OpenStaging(fsys, stagingTestDir, snap)
	if err != nil {
		t.Fatal(err)
	}
	piece, at := leaderPiece(t, data, 100, next, 1<<20)
	if err := s.Add(piece, at); err != nil || s.Sync() != nil || s.Close() != nil {
		t.Fatalf("add: %v", err)
	}
	later := StagedSnapshot{Index: 41, Term: 3, LogStartOffset: 100, NextOffset: next, Sender: 2}
	other, anyone := snap, snap
	other.Sender, anyone.Sender = 3, 0
	// A meta file of format version 1 (before senders were recorded).
	writeV1 := func(f vfs.FS) {
		b := encodeStagingMeta(snap)
		v1 := append(append([]byte(nil), b[:40]...), 0, 0, 0, 0)
		be.PutUint16(v1[4:], 1)
		be.PutUint32(v1[40:], crcOf(v1[:40]))
		if err := vfs.WriteFileAtomic(f, filepath.Join(StagingDir(stagingTestDir), stagingMetaName), v1); err != nil {
			t.Fatal(err)
		}
	}
	resumed := map[string]bool{"same snapshot": true, "no sender asked (an install)": true, "version 1, no sender asked": true}
	for name, reopen := range map[string]func(vfs.FS) StagedSnapshot{
		"same snapshot":                func(vfs.FS) StagedSnapshot { return snap },
		"later snapshot":               func(vfs.FS) StagedSnapshot { return later },
		"another sender":               func(vfs.FS) StagedSnapshot { return other },
		"no sender asked (an install)": func(vfs.FS) StagedSnapshot { return anyone },
		"version 1, no sender asked":   func(f vfs.FS) StagedSnapshot { writeV1(f); return anyone },
		"version 1, a sender asked":    func(f vfs.FS) StagedSnapshot { writeV1(f); return snap },
		"damaged meta": func(f vfs.FS) StagedSnapshot {
			m, err := f.Create(filepath.Join(StagingDir(stagingTestDir), stagingMetaName))
			if err != nil {
				t.Fatal(err)
			}
			m.Write([]byte("damaged"))
			m.Close()
			return snap
		},
	} {
		f := fsys.Crash(vfs.CrashOptions{})
		s, err := OpenStaging(f, stagingTestDir, reopen(f))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantNext, wantBytes := int64(100), 0
		if resumed[name] {
			wantNext, wantBytes = at, len(data)
		}
		if s.Next() != wantNext || len(stagedBytes(t, f)) != wantBytes {
			t.Errorf("%s: reopened at %d with %d bytes, want %d with %d", name, s.Next(), len(stagedBytes(t, f)), wantNext, wantBytes)
		}
		s.Close()
	}
	for budget := 1; ; budget++ {
		cut := vfs.NewPowerCutFS(fsys.Crash(vfs.CrashOptions{}), budget, vfs.CrashOptions{})
		s, err := OpenStaging(cut, stagingTestDir, later)
		if err == nil {
			s.Close()
			break
		}
		after := cut.Crash()
		s, err = OpenStaging(after, stagingTestDir, later)
		if err != nil || s.Next() != 100 || len(stagedBytes(t, after)) != 0 {
			t.Fatalf("power cut before mutation %d of a start: %v, at %d", budget, err, s.Next())
		}
		s.Close()
	}
}

// TestStagingRefusesPieces: a piece that is not the continuation at Next.
func TestStagingRefusesPieces(t *testing.T) {
	snap := StagedSnapshot{Index: 40, Term: 3, LogStartOffset: 100, NextOffset: 120}
	s, err := OpenStaging(vfs.NewMem(), stagingTestDir, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := func(base int64, n int) []byte { return stampedBatch(t, base, spec{term: 3, records: n}) }
	for name, c := range map[string]struct {
		data []byte
		next int64
	}{
		"below next":          {b(97, 2), 99},
		"holding next, long":  {b(99, 2), 100},
		"past the snapshot":   {b(118, 3), 121},
		"next inside a batch": {b(100, 3), 102},
		"next past snapshot":  {nil, 121},
		"no progress":         {nil, 100},
	} {
		if err := s.Add(c.data, c.next); err == nil || s.Next() != 100 {
			t.Errorf("%s: %v, at %d", name, err, s.Next())
		}
	}
	if err := s.Add(b(100, 3), 105); err != nil || s.Next() != 105 {
		t.Fatalf("a batch then a gap: %v, at %d", err, s.Next())
	}
	if err := s.Add(nil, 120); err != nil || !s.Done() {
		t.Fatalf("a gap up to the snapshot's next offset: %v, done %v", err, s.Done())
	}
}

// TestStagingKeepsTheBatchHoldingTheLogStart: the first piece may begin
// with the batch holding the log start offset (DeleteRecords moved it
// inside that batch), whole; no later piece may begin below Next, and a
// resumed copy scans the same way.
func TestStagingKeepsTheBatchHoldingTheLogStart(t *testing.T) {
	snap := StagedSnapshot{Index: 40, Term: 3, LogStartOffset: 100, NextOffset: 120}
	fsys := vfs.NewMem()
	s, err := OpenStaging(fsys, stagingTestDir, snap)
	if err != nil {
		t.Fatal(err)
	}
	b := func(base int64, n int) []byte { return stampedBatch(t, base, spec{term: 3, records: n}) }
	if err := s.Add(b(98, 4), 102); err != nil || s.Next() != 102 {
		t.Fatalf("the batch holding the log start: %v, at %d", err, s.Next())
	}
	if err := s.Add(b(101, 2), 103); err == nil || s.Next() != 102 {
		t.Fatalf("a later batch below Next: %v, at %d", err, s.Next())
	}
	if err := s.Add(b(102, 3), 105); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = OpenStaging(fsys, stagingTestDir, snap); err != nil || s.Next() != 105 {
		t.Fatalf("resumed at %d (%v), want 105: both batches kept", s.Next(), err)
	}
	s.Close()
}
