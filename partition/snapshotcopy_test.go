package partition

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/raftlog"
)

// TestReplicatedSnapshotDataIsTheLeadersLog: after the cleaner of a
// compacted topic compacted the leader's Raft log, the leader serves the
// data below its snapshot (with the gaps compaction left) in pieces that
// verify and together are its log from the descriptor's log start to its
// next offset; once the cleaner compacted further, the earlier snapshot
// is refused.
func TestReplicatedSnapshotDataIsTheLeadersLog(t *testing.T) {
	g := newGroup(t, 23, []uint64{1, 2, 3}, func(c *Config) {
		c.Storage.SegmentBytes = 400
		c.Compact, c.DeleteSegments = true, false
	})
	l := g.leader()
	produceAndClean := func(from int32) {
		for seq := from; seq < from+40; seq += 2 {
			g.produceCommitted(l, keyedIdempotent(t, 7, seq, "shared", fmt.Sprint("unique", seq)))
		}
		if err := g.parts[l].Clean(g.clock.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	produceAndClean(0)
	p := g.parts[l]
	_, desc, index, term := currentSnapshot(t, p)
	if index <= 1 || desc.LogStartOffset >= desc.NextOffset {
		t.Fatalf("snapshot at %d holds [%d, %d): the cleaner compacted nothing to copy", index, desc.LogStartOffset, desc.NextOffset)
	}
	var got []byte
	for at, reads := desc.LogStartOffset, 0; at < desc.NextOffset; reads++ {
		if reads > 1000 {
			t.Fatalf("copy not done after %d reads, at %d of %d", reads, at, desc.NextOffset)
		}
		d, err := p.ReadSnapshotData(index, term, at, 300)
		if err != nil {
			t.Fatalf("read at %d: %v", at, err)
		}
		if len(d.Batches) > 0 {
			if end, err := raftlog.CheckSnapshotData(d.Batches, at, desc.NextOffset); err != nil || end != d.Next {
				t.Fatalf("piece at %d ends at %d (%v), Next %d", at, end, err, d.Next)
			}
		}
		got, at = append(got, d.Batches...), d.Next
	}
	want, err := p.log.Read(desc.LogStartOffset, 1<<30, desc.NextOffset)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("copy of [%d, %d): %d bytes, the leader's log %d", desc.LogStartOffset, desc.NextOffset, len(got), len(want))
	}
	produceAndClean(40)
	if _, err := p.ReadSnapshotData(index, term, desc.LogStartOffset, 300); !errors.Is(err, raftlog.ErrSnapshotChanged) {
		t.Fatalf("the earlier snapshot after the cleaner compacted further: %v, want ErrSnapshotChanged", err)
	}
}

// TestCleanerRewriteBelowTheSnapshotChangesIt: a cleaner pass that
// rewrites a segment whose data lies wholly below the Raft log's
// snapshot (the compaction it asks for is there already) still gives the
// log a new snapshot first, so a follower half way through copying the
// data below the old one is told ErrSnapshotChanged at its next piece and
// starts again, rather than join pieces from before and after the pass.
func TestCleanerRewriteBelowTheSnapshotChangesIt(t *testing.T) {
	g := newGroup(t, 24, []uint64{1, 2, 3}, func(c *Config) {
		c.Storage.SegmentBytes = 400
		c.Compact, c.DeleteSegments = true, false
	})
	l := g.leader()
	p := g.parts[l]
	for seq := int32(0); seq < 40; seq += 2 {
		g.produceCommitted(l, keyedIdempotent(t, 7, seq, "shared", fmt.Sprint("unique", seq)))
	}
	if err := p.Clean(g.clock.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	g.produceCommitted(l, keyedIdempotent(t, 7, 40, "shared", "after")) // an applied entry past the snapshot
	_, desc, index, term := currentSnapshot(t, p)
	first, err := p.ReadSnapshotData(index, term, desc.LogStartOffset, 1)
	if err != nil || first.Next >= desc.NextOffset {
		t.Fatalf("first piece of [%d, %d): next %d, %v; want more to copy", desc.LogStartOffset, desc.NextOffset, first.Next, err)
	}
	segs := p.log.Segments()
	seg := segs[0]
	if seg.NextOffset > desc.NextOffset {
		t.Fatalf("first segment [%d, %d) not below the snapshot's next offset %d", seg.BaseOffset, seg.NextOffset, desc.NextOffset)
	}
	kept, err := p.log.Read(seg.BaseOffset, 1<<20, seg.NextOffset)
	if err != nil {
		t.Fatal(err)
	}
	if replaced, err := p.replaceSegment(seg, kept, p.installsBegun()); err != nil || !replaced {
		t.Fatalf("replace the first segment: %v %v", replaced, err)
	}
	if _, err := p.ReadSnapshotData(index, term, first.Next, 300); !errors.Is(err, raftlog.ErrSnapshotChanged) {
		t.Fatalf("next piece after a rewrite below the snapshot: %v, want ErrSnapshotChanged", err)
	}
}

// currentSnapshot is p's Raft snapshot, its descriptor, index and term.
func currentSnapshot(t *testing.T, p *Partition) (*raftpb.Snapshot, raftlog.Descriptor, uint64, uint64) {
	t.Helper()
	snap, err := p.raft.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	return snap, desc, snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
}
