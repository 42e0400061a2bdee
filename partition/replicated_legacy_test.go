package partition

import (
	"context"
	"fmt"
	"path"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestReplicatedOpensLegacyDirectory: a directory written by the
// single-node partition (segments, log-state, leader-epochs.json,
// producer-state.json, no Raft log) opens as a one-voter replicated
// partition: every record readable at its offset, the legacy epochs
// answered, producer state kept, and new batches after the legacy end.
func TestReplicatedOpensLegacyDirectory(t *testing.T) {
	e := testEnv(vfs.NewMem())
	cfg := DefaultConfig()
	cfg.Storage.SegmentBytes, cfg.Storage.IndexIntervalBytes = 400, 100 // several segments
	var want []string
	for round, n := range []int{2, 0, 3} {
		p, err := Open(e, partDir, "t", 0, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			res, err := p.Append(idempotent(t, 9, 0, int32(len(want)), 2))
			if err != nil {
				t.Fatalf("round %d, batch %d: %v", round, i, err)
			}
			if res.BaseOffset != int64(len(want)) {
				t.Fatalf("legacy batch at %d, want %d", res.BaseOffset, len(want))
			}
			want = append(want, fmt.Sprintf("p9-%d", len(want)), fmt.Sprintf("p9-%d", len(want)+1))
		}
		if round == 2 {
			if _, err := p.DeleteRecordsBefore(context.Background(), 2); err != nil {
				t.Fatal(err)
			}
			want = want[2:]
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"log-state", "leader-epochs.json", "producer-state.json", "00000000000000000000.log"} {
		if _, err := e.FS.Stat(path.Join(partDir, name)); err != nil {
			t.Fatalf("legacy directory: %v", err)
		}
	}
	if _, err := e.FS.Stat(path.Join(partDir, "raft-state")); err == nil {
		t.Fatal("legacy directory with a raft-state")
	}
	for reopen := range 2 {
		p := openOneVoterEnv(t, e, cfg)
		if start := p.LogStartOffset(); start != 2 {
			t.Fatalf("open %d: log start %d, want 2", reopen, start)
		}
		if got := readValues(t, p, 2); fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
			t.Fatalf("open %d: read %v, want %v first", reopen, got, want)
		}
		// The single writer's opens that wrote were epochs 0 and 1 (an open
		// writing nothing leaves its epoch to the next).
		for _, c := range []struct {
			epoch     int32
			wantEpoch int32
			wantEnd   int64
		}{{0, 0, 4}, {1, 1, 10}} {
			if epoch, end := p.EndOffsetForEpoch(c.epoch); epoch != c.wantEpoch || end != c.wantEnd {
				t.Fatalf("open %d: EndOffsetForEpoch(%d) = %d, %d; want %d, %d", reopen, c.epoch, epoch, end, c.wantEpoch, c.wantEnd)
			}
		}
		if reopen == 0 {
			dup, err := p.Append(idempotent(t, 9, 0, 8, 2))
			if err != nil || !dup.Duplicate || dup.BaseOffset != 8 {
				t.Fatalf("retry of the last legacy batch: %+v, %v", dup, err)
			}
			res := appendCommitted(t, p, idempotent(t, 9, 0, 10, 2))
			if res.BaseOffset != 10 {
				t.Fatalf("first replicated batch at %d, want 10", res.BaseOffset)
			}
			want = append(want, "p9-10", "p9-11")
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
