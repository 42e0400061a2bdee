package partition

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage/vfs"
)

// stageLeadersCopy copies the data below the leader's current snapshot
// into node to's staging directory through its partition, as a
// follower's driver does before it steps the leader's snapshot, and
// returns the snapshot's descriptor and index.
func (g *group) stageLeadersCopy(from, to uint64) (raftlog.Descriptor, uint64) {
	g.t.Helper()
	p := g.parts[from]
	snap, desc, index, term := currentSnapshot(g.t, p)
	if _, wanted := p.SnapshotCopyWanted(snap); wanted {
		g.t.Fatal("the leader wants a copy of its own snapshot's data")
	}
	staged, wanted := g.parts[to].SnapshotCopyWanted(snap)
	want := raftlog.StagedSnapshot{Index: index, Term: term, LogStartOffset: desc.LogStartOffset, NextOffset: desc.NextOffset}
	if !wanted || staged != want {
		g.t.Fatalf("follower wants a copy %v of %+v, want %+v", wanted, staged, want)
	}
	s, err := g.parts[to].OpenSnapshotCopy(staged)
	if err != nil {
		g.t.Fatal(err)
	}
	for reads := 0; !s.Done(); reads++ {
		if reads > 1000 {
			g.t.Fatalf("copy not done after %d reads, at %d of %d", reads, s.Next(), desc.NextOffset)
		}
		d, err := p.ReadSnapshotData(index, term, s.Next(), 300)
		if err != nil {
			g.t.Fatal(err)
		}
		if err := s.Add(d.Batches, d.Next); err != nil {
			g.t.Fatal(err)
		}
	}
	if err := s.Complete(); err != nil {
		g.t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		g.t.Fatal(err)
	}
	return desc, index
}

// cleanPastAFollower crashes a follower (behind) after the leader's first
// record, appends more of the same key on the leader l, and compacts the
// others' logs past the follower's end (end, their high watermark), so it
// needs a snapshot with data below it when it comes back.
func (g *group) cleanPastAFollower() (l, behind uint64, end int64) {
	g.t.Helper()
	l = g.leader()
	behind = l%3 + 1
	g.produceCommitted(l, keyedIdempotent(g.t, 7, 0, "shared", "first"))
	g.converge(2)
	g.crash(behind)
	for seq := int32(2); seq < 60; seq += 2 {
		g.produceCommitted(l, keyedIdempotent(g.t, 7, seq, "shared", fmt.Sprint("unique", seq)))
	}
	end = g.parts[l].HighWatermark()
	for _, id := range g.c.IDs() {
		if id == behind {
			continue
		}
		if err := g.parts[id].Clean(g.clock.Now().UnixMilli()); err != nil {
			g.t.Fatalf("clean on %d: %v", id, err)
		}
	}
	// Compaction rewrote batches a high watermark exposed: what the
	// replicas expose from now on is checked against that.
	clear(g.exposed)
	return l, behind, end
}

// TestReplicatedFollowerInstallsStagedCopy: while a follower is down the
// others' cleaners compact a compacted topic (and, with compact,delete,
// retention deletes its oldest segments) past its log end; back up and
// cut off, the follower wants a copy of the data below the leader's
// snapshot (SnapshotCopyWanted) and stages it (OpenSnapshotCopy); healed,
// it installs the snapshot with that data: it serves from the leader's log start every batch the
// leader holds, at the same offsets, and its staging directory is gone.
func TestReplicatedFollowerInstallsStagedCopy(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"compact":        func(c *Config) { c.Compact, c.DeleteSegments = true, false },
		"compact,delete": func(c *Config) { c.Compact, c.DeleteSegments, c.RetentionBytes = true, true, 1200 },
	} {
		t.Run(name, func(t *testing.T) {
			g := newGroup(t, 24, []uint64{1, 2, 3}, func(c *Config) {
				c.Storage.SegmentBytes = 400
				edit(c)
			})
			l, behind, end := g.cleanPastAFollower()
			// Back up but cut off, it copies the data, then hears the leader.
			g.c.Net.Isolate(behind, g.c.IDs())
			g.restart(behind)
			desc, index := g.stageLeadersCopy(l, behind)
			g.c.Net.Heal()
			g.converge(end)
			f := g.parts[behind]
			snap, err := f.raft.Snapshot()
			if err != nil || snap.GetMetadata().GetIndex() < index {
				t.Fatalf("follower's snapshot at %d (%v), want the leader's at %d installed", snap.GetMetadata().GetIndex(), err, index)
			}
			if f.LogStartOffset() != desc.LogStartOffset || g.parts[l].LogStartOffset() != desc.LogStartOffset {
				t.Fatalf("follower serves from %d, the leader from %d, want %d", f.LogStartOffset(), g.parts[l].LogStartOffset(), desc.LogStartOffset)
			}
			got, err := f.log.Read(desc.LogStartOffset, 1<<30, end)
			if err != nil {
				t.Fatal(err)
			}
			want, err := g.parts[l].log.Read(desc.LogStartOffset, 1<<30, end)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 || !bytes.Equal(got, want) {
				t.Fatalf("follower holds %d bytes from %d, the leader %d", len(got), desc.LogStartOffset, len(want))
			}
			if _, err := g.fs[behind].List(raftlog.StagingDir(partDir)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("staging directory left after the install: %v", err)
			}
			// Restarted from its files, it serves the same.
			g.crash(behind)
			g.restart(behind)
			g.converge(end)
			if f = g.parts[behind]; f.LogStartOffset() != desc.LogStartOffset {
				t.Fatalf("restarted follower serves from %d, want %d", f.LogStartOffset(), desc.LogStartOffset)
			}
			if got, err := f.log.Read(desc.LogStartOffset, 1<<30, end); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("restarted follower holds %d bytes (%v), want the leader's %d", len(got), err, len(want))
			}
		})
	}
}

// TestReplicatedFollowerRefusesASnapshotWithoutItsData: a replica whose
// owner copies snapshots' data (ReplicaConfig.CopiesSnapshots) is sent the
// leader's snapshot with no copy staged (its owner's copy was replaced, or
// never made): it refuses the install rather than restart its log empty at
// the snapshot's next offset, past records the group acknowledged, and its
// replica stops with nothing written, the partition's segments, producer
// state and install count as they were. Its owner is asked to recreate
// the replica (Restart); without Restart, the partition goes offline as
// damaged. Recreated, with the copy staged, it installs the snapshot.
func TestReplicatedFollowerRefusesASnapshotWithoutItsData(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			g := newGroup(t, 26, []uint64{1, 2, 3}, func(c *Config) {
				c.Storage.SegmentBytes = 400
				c.Compact, c.DeleteSegments = true, false
			})
			g.copiesSnapshots = true
			if restart {
				g.restarts = map[uint64]int{}
			}
			l, behind, end := g.cleanPastAFollower()
			g.restart(behind)
			f := g.parts[behind]
			start, next := f.LogStartOffset(), f.log.NextOffset()
			held, err := f.log.Read(start, 1<<30, next)
			if err != nil || len(held) == 0 {
				t.Fatalf("follower's own records: %d bytes, %v", len(held), err)
			}
			// Perhaps none yet: a refused install must not write one either.
			producers, _ := vfs.ReadFile(g.fs[behind], partDir+"/"+producerStateFile)
			installs := f.installsBegun()
			_, err = g.c.RunUntil(func() bool { return false }, 20_000)
			if !errors.Is(err, raftlog.ErrSnapshotDataMissing) {
				t.Fatalf("the follower's replica stopped with %v, want ErrSnapshotDataMissing", err)
			}
			if f.LogStartOffset() != start || f.log.NextOffset() != next {
				t.Fatalf("follower's segments [%d, %d), want [%d, %d) as before", f.LogStartOffset(), f.log.NextOffset(), start, next)
			}
			if got, err := f.log.Read(start, 1<<30, next); err != nil || !bytes.Equal(got, held) {
				t.Fatalf("follower's records after the refusal: %d bytes (%v), want its %d", len(got), err, len(held))
			}
			if got, _ := vfs.ReadFile(g.fs[behind], partDir+"/"+producerStateFile); !bytes.Equal(got, producers) {
				t.Fatalf("producer state written by a refused install: %d bytes, before %d", len(got), len(producers))
			}
			if got := f.installsBegun(); got != installs {
				t.Fatalf("installs begun %d, want %d: a refused install counted", got, installs)
			}
			if !restart {
				if err := f.Err(); !errors.Is(err, ErrStorageFailed) {
					t.Fatalf("follower partition: %v, want offline (ErrStorageFailed)", err)
				}
				if told := g.damaged[behind]; len(told) != 1 || !errors.Is(told[0], ErrStorageFailed) {
					t.Fatalf("owner told %v, want once", told)
				}
				return
			}
			if err := f.Err(); err != nil || len(g.damaged[behind]) != 0 || g.restarts[behind] != 1 {
				t.Fatalf("partition %v, damaged %v, restarts asked %d; want online, not damaged, one restart", err, g.damaged[behind], g.restarts[behind])
			}
			// Recreated (here with its node), the copy staged, it installs.
			g.crash(behind)
			g.c.Net.Isolate(behind, g.c.IDs())
			g.restart(behind)
			desc, _ := g.stageLeadersCopy(l, behind)
			g.c.Net.Heal()
			g.converge(end)
			if f = g.parts[behind]; f.LogStartOffset() != desc.LogStartOffset {
				t.Fatalf("follower serves from %d after the copy, want %d", f.LogStartOffset(), desc.LogStartOffset)
			}
		})
	}
}

// TestReplicatedFollowerCopiesTheBatchHoldingTheLogStart: DeleteRecords
// moved the log start inside a batch (and compacted the Raft log past a
// follower that was down); the follower's copy of the data below the
// leader's snapshot holds that batch whole, and once installed it serves
// from the same log start the same records as the leader, rather than
// start at the batch after it.
func TestReplicatedFollowerCopiesTheBatchHoldingTheLogStart(t *testing.T) {
	g := newGroup(t, 25, []uint64{1, 2, 3}, func(c *Config) { c.Storage.SegmentBytes = 400 })
	l := g.leader()
	behind := l%3 + 1
	g.produceCommitted(l, produce(t, 1, "first"))
	g.converge(1)
	g.crash(behind)
	for i := range 20 {
		g.produceCommitted(l, produce(t, 3, fmt.Sprint("v", i)))
	}
	end := g.parts[l].HighWatermark()
	const start = 1 + 3*10 + 1 // the second record of the eleventh batch of three
	at, err := g.parts[l].ProposeDeleteRecords(start)
	if err != nil {
		t.Fatal(err)
	}
	g.run("the DeleteRecords applied", func() bool { done, err := g.parts[l].appliedDone(at); return done && err == nil }, 10_000)
	g.c.Net.Isolate(behind, g.c.IDs())
	g.restart(behind)
	desc, _ := g.stageLeadersCopy(l, behind)
	if desc.LogStartOffset != start {
		t.Fatalf("snapshot's log start %d, want %d", desc.LogStartOffset, start)
	}
	g.c.Net.Heal()
	g.converge(end)
	f := g.parts[behind]
	if f.LogStartOffset() != start {
		t.Fatalf("follower serves from %d, want %d", f.LogStartOffset(), start)
	}
	got, err := f.log.Read(start, 1<<30, end)
	if err != nil {
		t.Fatal(err)
	}
	want, err := g.parts[l].log.Read(start, 1<<30, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !bytes.Equal(got, want) {
		t.Fatalf("follower holds %d bytes from %d, the leader %d", len(got), start, len(want))
	}
	g.crash(behind)
	g.restart(behind)
	g.converge(end)
	if f = g.parts[behind]; f.LogStartOffset() != start {
		t.Fatalf("restarted follower serves from %d, want %d", f.LogStartOffset(), start)
	}
	if got, err := f.log.Read(start, 1<<30, end); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("restarted follower holds %d bytes (%v), want the leader's %d", len(got), err, len(want))
	}
}
