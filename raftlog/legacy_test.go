package raftlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

var updateLegacyFixture = flag.Bool("update-legacy-fixture", false,
	"rewrite testdata/legacy-v1 with the single-node partition code of this tree")

const legacyFixtureDir = "testdata/legacy-v1"

// legacyStorageConfig keeps the fixture small and spread over segments.
var legacyStorageConfig = storage.Config{SegmentBytes: 400, SegmentMs: storage.DefaultSegmentMs, IndexIntervalBytes: 100}

// legacyWrites is how many batches each open of the single-node partition
// appends: every open is a new leader epoch, persisted once it writes, so
// an open that writes nothing leaves its epoch number to the next one.
var legacyWrites = []int{3, 2, 0, 3}

// TestGenerateLegacyFixture writes testdata/legacy-v1 with today's
// single-node partition: a few opens appending batches of two records
// whose values name their offsets, and a DeleteRecords moving the log
// start past the first batch. Run with -update-legacy-fixture.
func TestGenerateLegacyFixture(t *testing.T) {
	if !*updateLegacyFixture {
		t.Skip("run with -update-legacy-fixture to rewrite " + legacyFixtureDir)
	}
	dir, err := filepath.Abs(legacyFixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	e := env.Real()
	e.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := partition.DefaultConfig()
	cfg.Storage = legacyStorageConfig
	for round, writes := range legacyWrites {
		p, err := partition.Open(e, dir, "legacy", 0, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range writes {
			next := p.LogEndOffset()
			recs := []batch.Record{{Offset: 0, TimestampMs: 1000 + next, Value: fmt.Appendf(nil, "value-%d", next)},
				{Offset: 1, TimestampMs: 1001 + next, Value: fmt.Appendf(nil, "value-%d", next+1)}}
			res, err := p.Append(batch.Build(recs, batch.None))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitDurable(context.Background(), res.LastOffset); err != nil {
				t.Fatal(err)
			}
		}
		if round == 1 {
			if _, err := p.DeleteRecordsBefore(context.Background(), 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// copyFixture copies the fixture into an in-memory filesystem, so the
// test never changes the committed files.
func copyFixture(t *testing.T) vfs.FS {
	t.Helper()
	fsys := vfs.NewMem()
	if err := fsys.MkdirAll("p"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(legacyFixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			t.Fatalf("unexpected directory %s in the fixture", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(legacyFixtureDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(fsys, "p/"+e.Name(), b); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

// fixtureEpochs reads the fixture's leader-epochs.json as the single-node
// partition wrote it.
func fixtureEpochs(t *testing.T) []raftlog.LegacyEpoch {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(legacyFixtureDir, "leader-epochs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Entries []struct {
			Epoch       int32 `json:"epoch"`
			StartOffset int64 `json:"start_offset"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []raftlog.LegacyEpoch
	for _, e := range f.Entries {
		out = append(out, raftlog.LegacyEpoch{Epoch: e.Epoch, StartOffset: e.StartOffset})
	}
	return out
}

// checkRecords reads every offset of [start, end) from the segments and
// checks it holds the record the generator wrote there.
func checkRecords(t *testing.T, st *storage.Log, start, end int64) {
	t.Helper()
	for off := start; off < end; off++ {
		data, err := st.Read(off, 1<<20, off+1)
		if err != nil {
			t.Fatalf("read offset %d: %v", off, err)
		}
		_, whole, _, err := batch.Next(data)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		recs, err := batch.Records(whole, batch.DefaultLimits())
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		found := false
		for _, r := range recs {
			if r.Offset == off {
				found = string(r.Value) == fmt.Sprintf("value-%d", off)
			}
		}
		if !found {
			t.Fatalf("offset %d: the record written there is not read back", off)
		}
	}
}

// TestLegacyFixture opens the directory today's single-node partition
// wrote as a raft log: before Create, Open says ErrStateMissing; Create
// puts the snapshot at the legacy end (log start, next offset, term the
// newest legacy epoch, the legacy epochs in its descriptor); every record
// is read at its old offset; EpochEndOffset answers the legacy epochs as
// the partition did; and the log goes on with a new term above them,
// across a reopen.
func TestLegacyFixture(t *testing.T) {
	fsys := copyFixture(t)
	legacy := fixtureEpochs(t)
	const start, end = 2, 16 // the generator's DeleteRecords and its 8 batches of 2
	if want := "[{0 0} {1 6} {2 10}]"; fmt.Sprint(legacy) != want {
		t.Fatalf("the fixture's epochs are %v, want %s", legacy, want)
	}
	if _, err := raftlog.Open(fsys, "p", legacyStorageConfig, 0); !errors.Is(err, raftlog.ErrStateMissing) {
		t.Fatalf("Open before Create: %v, want ErrStateMissing", err)
	}
	boot := raftlog.Bootstrap{GroupID: 3, ReplicaID: 1<<20 | 1, Index: 1, Term: 1, ConfState: &raftpb.ConfState{Voters: []uint64{1<<20 | 1}}}
	l, err := raftlog.Create(fsys, "p", legacyStorageConfig, boot, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	term := uint64(legacy[len(legacy)-1].Epoch)
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetMetadata().GetIndex() != 1 || snap.GetMetadata().GetTerm() != term || d.LogStartOffset != start || d.NextOffset != end ||
		fmt.Sprint(d.LegacyEpochs) != fmt.Sprint(legacy) {
		t.Fatalf("snapshot %v with %+v; want index 1, term %d, [%d, %d), epochs %v", snap.GetMetadata(), d, term, start, end, legacy)
	}
	if first, _ := l.FirstIndex(); first != 2 {
		t.Fatalf("FirstIndex %d, want 2", first)
	}
	checkRecords(t, l.Segments(), start, end)
	// Epoch 0 wrote [0, 6), 1 [6, 10), 2 [10, 16) and is the newest: the
	// partition's own answers.
	wantEpochs := map[int32][2]int64{-1: {-1, -1}, 0: {0, 6}, 1: {1, 10}, 2: {2, end}, 3: {2, end}}
	for e, want := range wantEpochs {
		if gotEpoch, gotEnd := l.EpochEndOffset(e, math.MaxInt64); gotEpoch != int32(want[0]) || gotEnd != want[1] {
			t.Errorf("EpochEndOffset(%d) = %d, %d; want %d, %d", e, gotEpoch, gotEnd, want[0], want[1])
		}
	}

	// The first election makes term 3; its data follows the legacy end.
	next := term + 1
	data, err := batch.Encode(batch.Header{BaseOffset: end, PartitionLeaderEpoch: int32(next), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		0, []batch.Record{{Offset: end, Value: fmt.Appendf(nil, "value-%d", end)}}, batch.None)
	if err != nil {
		t.Fatal(err)
	}
	ents := []*raftpb.Entry{{Index: proto.Uint64(2), Term: proto.Uint64(next)}, {Index: proto.Uint64(3), Term: proto.Uint64(next), Data: data}}
	if err := l.Append(ents, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l, err = raftlog.Open(fsys, "p", legacyStorageConfig, 0); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, l.Segments(), start, end+1)
	if epoch, endOffset := l.EpochEndOffset(2, math.MaxInt64); epoch != 2 || endOffset != end {
		t.Errorf("EpochEndOffset(2) = %d, %d after the new term; want 2, %d", epoch, endOffset, end)
	}
	if epoch, endOffset := l.EpochEndOffset(int32(next), math.MaxInt64); epoch != int32(next) || endOffset != end+1 {
		t.Errorf("EpochEndOffset(%d) = %d, %d; want %d, %d", next, epoch, endOffset, next, end+1)
	}
	if idx, err := l.IndexAtOffset(end); err != nil || idx != 3 {
		t.Errorf("IndexAtOffset(%d) = %d, %v; want 3", end, idx, err)
	}
}
