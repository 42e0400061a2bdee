package partition

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/replica"
)

// TestReplicatedFollowerBehindRetentionRestartsFromSnapshot: while a
// follower is down, retention on the others deletes segments and so
// compacts their Raft logs; back up, the follower gets the leader's
// snapshot, restarts its log empty at the snapshot's next offset and
// serves from there the same batches as the others, and, restarted from
// its files, the producer state the snapshot carried answers a retry once
// it leads.
func TestReplicatedFollowerBehindRetentionRestartsFromSnapshot(t *testing.T) {
	g := newGroup(t, 21, []uint64{1, 2, 3}, func(c *Config) {
		c.Storage.SegmentBytes = 400
		c.DeleteSegments, c.RetentionBytes = true, 1200
	})
	l := g.leader()
	behind := l%3 + 1
	g.produceCommitted(l, idempotent(t, 7, 0, 0, 2))
	g.converge(2)
	g.crash(behind)
	var last []byte
	for seq := int32(2); seq < 60; seq += 2 {
		last = idempotent(t, 7, 0, seq, 2)
		g.produceCommitted(l, last)
	}
	end := g.parts[l].HighWatermark()
	for _, id := range g.c.IDs() {
		if id == behind {
			continue
		}
		if err := g.parts[id].Clean(g.clock.Now().UnixMilli()); err != nil {
			t.Fatalf("clean on %d: %v", id, err)
		}
		if g.parts[id].LogStartOffset() == 0 {
			t.Fatalf("node %d: retention deleted nothing", id)
		}
	}
	first, err := g.parts[l].raft.FirstIndex()
	if err != nil || first <= 2 {
		t.Fatalf("leader's raft log starts at %d (%v) after retention, want it compacted", first, err)
	}
	g.restart(behind)
	g.converge(end)
	f := g.parts[behind]
	snap, err := g.parts[behind].raft.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetMetadata().GetIndex() <= 2 {
		t.Fatalf("follower's raft log snapshot at %d: it installed none", snap.GetMetadata().GetIndex())
	}
	start := f.LogStartOffset()
	if start <= 2 || start > end {
		t.Fatalf("follower serves from %d, want past what it had (2) and at most %d", start, end)
	}
	if _, err := f.Read(start-1, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the follower's start: %v, want ErrOffsetOutOfRange", err)
	}
	got := committedBytes(t, f)
	want, err := g.parts[l].log.Read(start, 1<<30, end)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("follower holds %d bytes from %d, the leader %d, and they differ", len(got), start, len(want))
	}
	// Restarted from its files, then leading, the follower answers a retry
	// of the last batch from the producer state the snapshot carried.
	g.crash(behind)
	g.restart(behind)
	g.converge(end)
	f = g.parts[behind]
	if f.LogStartOffset() != start {
		t.Fatalf("restarted follower serves from %d, want %d", f.LogStartOffset(), start)
	}
	if err := g.c.Do(l, func(r *replica.Replica) error { r.TransferLeader(behind); return nil }); err != nil {
		t.Fatal(err)
	}
	g.run("the follower leads", func() bool { id, ok := g.c.Leader(); return ok && id == behind }, 10_000)
	res, err := f.Append(last)
	if err != nil || !res.Duplicate || res.LastOffset != end-1 {
		t.Fatalf("retry of the last batch on the restored replica: %+v, %v; want a duplicate ending at %d", res, err, end-1)
	}
	next := g.produceCommitted(behind, idempotent(t, 7, 0, 60, 2))
	if next.BaseOffset != end {
		t.Fatalf("next batch at %d, want %d", next.BaseOffset, end)
	}
	g.converge(end + 2)
	g.sameEverywhereFrom(start)
}

// sameEverywhereFrom checks that the live replicas hold byte-identical
// batches from offset on, and the same high watermark.
func (g *group) sameEverywhereFrom(offset int64) {
	g.t.Helper()
	var want []byte
	var hwm int64 = -1
	for _, id := range g.c.IDs() {
		p := g.parts[id]
		if !g.c.Node(id).Up {
			continue
		}
		got, err := p.log.Read(offset, 1<<30, p.HighWatermark())
		if err != nil {
			g.t.Fatalf("node %d: %v", id, err)
		}
		if hwm >= 0 && (string(got) != string(want) || p.HighWatermark() != hwm) {
			g.t.Fatalf("node %d: %d bytes from %d up to %d, want %d bytes up to %d", id, len(got), offset, p.HighWatermark(), len(want), hwm)
		}
		want, hwm = got, p.HighWatermark()
	}
}

// TestReplicatedUncommittedEntriesAreNotServed: an isolated leader's
// segments hold its uncommitted tail (they are its Raft log), yet reads,
// timestamp lookups and the high watermark stop at what was applied; once
// another leader's entries replace the tail, every replica answers
// OffsetForLeaderEpoch from its Raft log's terms.
func TestReplicatedUncommittedEntriesAreNotServed(t *testing.T) {
	g := newGroup(t, 22, []uint64{1, 2, 3})
	l := g.leader()
	base := g.produceCommitted(l, produce(t, 2, "base"))
	g.converge(base.LastOffset + 1)
	g.c.Net.Isolate(l, g.c.IDs())
	for i := range 3 {
		if _, err := g.parts[l].Append(produce(t, 1, fmt.Sprintf("tail%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	p := g.parts[l]
	committed := base.LastOffset + 1
	if p.LogEndOffset() != committed+3 || p.HighWatermark() != committed {
		t.Fatalf("isolated leader: log end %d, high watermark %d; want %d and %d", p.LogEndOffset(), p.HighWatermark(), committed+3, committed)
	}
	res, err := p.Read(0, 1<<20)
	if err != nil || bytes.Contains(res.Records, []byte("tail")) || res.HighWatermark != committed {
		t.Fatalf("read from 0: %d bytes, high watermark %d, %v; want the committed batch only", len(res.Records), res.HighWatermark, err)
	}
	if res, err := p.Read(committed, 1<<20); err != nil || len(res.Records) != 0 {
		t.Fatalf("read at the high watermark: %d bytes, %v; want none", len(res.Records), err)
	}
	if off, _, err := p.OffsetForTimestamp(0); err != nil || off >= committed {
		t.Fatalf("offset for timestamp 0: %d, %v; want a committed offset", off, err)
	}
	if off, _, err := p.MaxTimestamp(); err != nil || off >= committed {
		t.Fatalf("max timestamp at offset %d, %v; want a committed offset or -1", off, err)
	}
	oldTerm := base.Term
	var other uint64
	g.run("a leader on the majority side", func() bool {
		id, ok := g.c.Leader()
		other = id
		return ok && id != l
	}, 10_000)
	won := g.produceCommitted(other, produce(t, 4, "won"))
	g.c.Net.Heal()
	g.converge(won.LastOffset + 1)
	g.sameEverywhere()
	for _, id := range g.c.IDs() {
		p := g.parts[id]
		if p.LogEndOffset() != won.LastOffset+1 {
			t.Fatalf("node %d: log end %d after the rejoin, want %d", id, p.LogEndOffset(), won.LastOffset+1)
		}
		if e, end := p.EndOffsetForEpoch(oldTerm); e != oldTerm || end != won.BaseOffset {
			t.Fatalf("node %d: epoch %d ends at (%d, %d), want (%d, %d)", id, oldTerm, e, end, oldTerm, won.BaseOffset)
		}
		if e, end := p.EndOffsetForEpoch(won.Term); e != won.Term || end != won.LastOffset+1 {
			t.Fatalf("node %d: epoch %d ends at (%d, %d), want the log end", id, won.Term, e, end)
		}
		if got := p.LeaderEpoch(); got != won.Term {
			t.Fatalf("node %d: leader epoch %d, want the term %d", id, got, won.Term)
		}
	}
}

// TestReplicatedConfChangeThenDeleteRecords: a follower catching up
// applies a configuration change, batches and a DeleteRecords, perhaps in
// one Apply (the DeleteRecords then waits for the change's ConfState to be
// recorded), or installs a snapshot taken past the change; its Raft log
// records the applied index past the change only with the replica's new
// ConfState, the snapshot carries that ConfState, the log start moves as
// on the leader, and a restart from its files keeps all three.
func TestReplicatedConfChangeThenDeleteRecords(t *testing.T) {
	for _, c := range []struct {
		name string
		// deleteAt is the DeleteRecords offset, given the last batch.
		deleteAt func(last AppendResult) int64
	}{
		{"FollowerReplays", func(AppendResult) int64 { return 10 }},
		{"FollowerGetsSnapshot", func(last AppendResult) int64 { return last.LastOffset - 1 }},
	} {
		t.Run(c.name, func(t *testing.T) { confChangeThenDeleteRecords(t, c.deleteAt) })
	}
}

// addLearner has leader l add replica id as a learner and runs until its
// configuration holds it.
func (g *group) addLearner(l, id uint64) {
	g.t.Helper()
	ccs, err := raftpb.ConfChangesFromString(fmt.Sprintf("l%d", id))
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.c.Do(l, func(r *replica.Replica) error { return r.ProposeConfChange(&raftpb.ConfChangeV2{Changes: ccs}) }); err != nil {
		g.t.Fatal(err)
	}
	g.run(fmt.Sprintf("learner %d in the leader's configuration", id), func() bool {
		return slices.Contains(g.c.Node(l).Replica.ConfState().GetLearners(), id)
	}, 10_000)
}

func confChangeThenDeleteRecords(t *testing.T, deleteAt func(AppendResult) int64) {
	g := newGroup(t, 23, []uint64{1, 2, 3}, func(c *Config) { c.Storage.SegmentBytes = 400 })
	l := g.leader()
	for i := range 6 {
		g.produceCommitted(l, produce(t, 2, fmt.Sprintf("a%d", i)))
	}
	g.converge(12)
	f := l%3 + 1
	g.crash(f)
	g.addLearner(l, 4)
	cc := g.parts[l].raft.LastConfChange(g.c.Node(l).Replica.Applied())
	if cc == 0 {
		t.Fatal("the leader's Raft log holds no configuration change")
	}
	var last AppendResult
	for i := range 6 {
		last = g.produceCommitted(l, produce(t, 2, fmt.Sprintf("b%d", i)))
	}
	start := deleteAt(last)
	at, err := g.parts[l].ProposeDeleteRecords(start)
	if err != nil {
		t.Fatal(err)
	}
	g.run("DeleteRecords applied on the leader", func() bool {
		done, err := g.parts[l].appliedDone(at)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}, 10_000)
	g.restart(f)
	for round := range 2 {
		// An entry after the catch-up: the Apply that takes it records the
		// replica's ConfState, which took the change after the previous one.
		more := g.produceCommitted(l, produce(t, 2, fmt.Sprintf("c%d", round)))
		g.converge(more.LastOffset + 1)
		p := g.parts[f]
		if p.LogStartOffset() != start {
			t.Fatalf("round %d: follower's log start %d, want %d", round, p.LogStartOffset(), start)
		}
		if err := p.raft.Checkpoint(); err != nil { // as the next interval would
			t.Fatal(err)
		}
		_, cs, err := p.raft.InitialState()
		if err != nil || len(cs.GetLearners()) != 1 {
			t.Fatalf("round %d: follower's Raft log records ConfState %v (%v), want the learner", round, cs, err)
		}
		applied, err := p.RaftApplied()
		if err != nil || applied < at.Index {
			t.Fatalf("round %d: follower's Raft log records applied %d (%v), want at least %d", round, applied, err, at.Index)
		}
		snap, err := g.parts[l].raft.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if learners := len(snap.GetMetadata().GetConfState().GetLearners()); (learners == 1) != (snap.GetMetadata().GetIndex() >= cc) {
			t.Fatalf("round %d: leader's snapshot at %d, past the change at %d or not, has ConfState %v", round, snap.GetMetadata().GetIndex(), cc, snap.GetMetadata().GetConfState())
		}
		g.crash(f)
		g.restart(f)
		if got := g.c.Node(f).Replica.ConfState().GetLearners(); len(got) != 1 {
			t.Fatalf("round %d: restarted follower's learners %v", round, got)
		}
	}
	g.sameEverywhereFrom(start)
}

// TestReplicatedOpenStopsAtApplied: an isolated leader's synced,
// uncommitted tail survives its restart in its segments, but the restart
// serves, counts in producer state and indexes only up to raft-state's
// applied offset; once the majority's leader overrides the tail, the
// replica holds what the others hold.
func TestReplicatedOpenStopsAtApplied(t *testing.T) {
	g := newGroup(t, 24, []uint64{1, 2, 3})
	l := g.leader()
	base := g.produceCommitted(l, idempotent(t, 9, 0, 0, 2))
	g.converge(base.LastOffset + 1)
	committed := base.LastOffset + 1
	g.c.Net.Isolate(l, g.c.IDs())
	tail, err := g.parts[l].Append(idempotent(t, 9, 0, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	g.run("the tail durable on the isolated leader", func() bool {
		done, err := g.parts[l].localDurableDone(tail.LastOffset, tail.Term)
		return done && err == nil
	}, 10_000)
	if err := g.parts[l].raft.Checkpoint(); err != nil { // raft-state as a checkpoint leaves it
		t.Fatal(err)
	}
	g.crash(l)
	g.restart(l)
	p := g.parts[l]
	if p.LogEndOffset() != tail.LastOffset+1 || p.HighWatermark() != committed {
		t.Fatalf("restarted isolated leader: log end %d, high watermark %d; want %d and %d", p.LogEndOffset(), p.HighWatermark(), tail.LastOffset+1, committed)
	}
	p.mu.Lock()
	last := p.producers.lastOffsets()[9]
	p.mu.Unlock()
	if last != base.LastOffset {
		t.Fatalf("producer state at open ends at offset %d, want the committed %d", last, base.LastOffset)
	}
	var other uint64
	g.run("a leader on the majority side", func() bool {
		id, ok := g.c.Leader()
		other = id
		return ok && id != l
	}, 10_000)
	won := g.produceCommitted(other, idempotent(t, 9, 0, 2, 1))
	g.c.Net.Heal()
	g.converge(won.LastOffset + 1)
	if data := g.sameEverywhere(); len(epochsOf(t, data)) != 2 {
		t.Fatalf("%d batches everywhere, want the committed one and the majority's", len(epochsOf(t, data)))
	}
}
