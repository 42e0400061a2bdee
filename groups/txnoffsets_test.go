package groups

import (
	"context"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestTxnOffsetsVisibleOnlyOnCommit: offsets committed in a transaction
// stay invisible until the COMMIT marker reaches the group's offsets
// partition, and are dropped by an ABORT; after a restart, the replay of
// the offsets log (transactional batches, markers) gives the same, and an
// open transaction's offsets are still held until its marker.
func TestTxnOffsetsVisibleOnlyOnCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys := vfs.NewMem()
	cl, co := openTest(t, fsys)
	req := CommitRequest{Group: "g", Generation: -1}
	if _, err := co.Locate("g"); err != nil { // creates the offsets topic
		t.Fatal(err)
	}
	index := partitionFor("g", 3)
	commit := func(pid int64, offset int64) {
		t.Helper()
		p, err := cl.Partition(OffsetsTopic, index)
		if err != nil {
			t.Fatal(err)
		}
		guard, err := p.VerifyStart(pid) // the coordinator's yes, as the Kafka handler has it
		if err != nil {
			t.Fatal(err)
		}
		if err := p.BeginTransaction(pid, 0, guard); err != nil {
			t.Fatal(err)
		}
		if _, err := co.TxnCommitOffsets(ctx, req, pid, 0, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: offset, LeaderEpoch: -1}}); err != nil {
			t.Fatal(err)
		}
	}
	marker := func(pid int64, committed bool) {
		t.Helper()
		p, err := cl.Partition(OffsetsTopic, index)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.WriteMarker(pid, 0, committed, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitAppended(ctx, res, true); err != nil {
			t.Fatal(err)
		}
		if err := co.TxnMarker(ctx, index, res.BaseOffset, pid, committed); err != nil {
			t.Fatal(err)
		}
	}
	fetched := func(co *Coordinator) int64 {
		t.Helper()
		got, err := co.FetchOffsets(ctx, "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		if oc, ok := got[TopicPartition{"t", 0}]; ok {
			return oc.Offset
		}
		return -1
	}
	commit(1, 10)
	if got := fetched(co); got != -1 {
		t.Fatalf("offset %d visible before the commit marker", got)
	}
	marker(1, true)
	if got := fetched(co); got != 10 {
		t.Fatalf("offset %d after the commit marker, want 10", got)
	}
	commit(2, 20)
	marker(2, false)
	if got := fetched(co); got != 10 {
		t.Fatalf("offset %d after the abort marker, want 10", got)
	}
	commit(3, 30) // left open across the restart
	_ = co.Close()
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}

	cl, co = openTest(t, fsys)
	defer cl.Close()
	defer co.Close()
	if got := fetched(co); got != 10 {
		t.Fatalf("after the restart: offset %d, want 10", got)
	}
	marker(3, true)
	if got := fetched(co); got != 30 {
		t.Fatalf("after the restart and the commit of the open transaction: offset %d, want 30", got)
	}
}

// TestTxnMarkerWhileLoading: a COMMIT marker committed while the offsets
// partition loads, past the high watermark the replay read to, is applied
// when the load finishes; it was dropped, and the group's offsets stayed
// those before the transaction until the next reload.
func TestTxnMarkerWhileLoading(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, co := openTest(t, vfs.NewMem())
	defer cl.Close()
	defer co.Close()
	if _, err := co.Locate("g"); err != nil { // creates the offsets topic
		t.Fatal(err)
	}
	index := partitionFor("g", 3)
	p, err := cl.Partition(OffsetsTopic, index)
	if err != nil {
		t.Fatal(err)
	}
	const pid = 7
	guard, err := p.VerifyStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(pid, 0, guard); err != nil {
		t.Fatal(err)
	}
	if _, err := co.TxnCommitOffsets(ctx, CommitRequest{Group: "g", Generation: -1}, pid, 0,
		map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 40, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	// A reload begins: its replay reads to the high watermark now.
	var gen uint64
	if err := co.do(ctx, func(int64) {
		co.unload(index)
		gen = co.nextGen()
		co.parts[index].state, co.parts[index].gen = loading, gen
	}); err != nil {
		t.Fatal(err)
	}
	replayed := co.replay(ctx, index, gen, p)
	res, err := p.WriteMarker(pid, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset < replayed.end {
		t.Fatalf("marker at %d, below the replay's end %d", res.BaseOffset, replayed.end)
	}
	if err := co.TxnMarker(ctx, index, res.BaseOffset, pid, true); err != nil {
		t.Fatal(err)
	}
	if err := co.do(ctx, func(int64) { co.finishLoad(replayed) }); err != nil {
		t.Fatal(err)
	}
	got, err := co.FetchOffsets(ctx, "g", nil)
	if err != nil {
		t.Fatal(err)
	}
	if oc := got[TopicPartition{"t", 0}]; oc.Offset != 40 {
		t.Fatalf("offsets after the load: %v, want 40 committed by the marker", got)
	}
}
