package partition

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/streams"
)

// streamOp is one record of a stream operation on stream.
func streamOp(stream, op, value string) []byte {
	return batch.Build([]batch.Record{{Key: []byte(stream), Value: []byte(value), Headers: []batch.RecordHeader{
		{Key: streams.HeaderStreamOp, Value: []byte(op)}}}}, batch.None)
}

// TestReplicatedStreamFollowerInstallsSnapshot: on a stream topic, while a
// follower is down, a stream is deleted and another truncated to its last
// three events, and the others' stream cleaners rewrite the segments
// (leaving a cleaned marker with the revision of the last event removed)
// past the follower's log end. Back up, the follower copies the data below
// the leader's snapshot and installs it: its stream index is built again
// from the installed log, listing every stream with the leader's
// revisions, and once it leads it refuses a stale expected revision and
// takes the next one at the revision after the leader's last.
// With more records than a build's tail before the snapshot, the index is
// built in the background, and the follower's appends needing it are
// refused as retriable until it is.
func TestReplicatedStreamFollowerInstallsSnapshot(t *testing.T) {
	t.Run("short log", func(t *testing.T) { testStreamFollowerInstalls(t, 0) })
	t.Run("long log", func(t *testing.T) { testStreamFollowerInstalls(t, buildTailRecords+100) })
}

func testStreamFollowerInstalls(t *testing.T, plain int) {
	g := newGroup(t, 31, []uint64{1, 2, 3}, func(c *Config) {
		c.DeleteSegments, c.Streams = false, true
		c.Storage.SegmentBytes = 400
	})
	l := g.leader()
	behind := l%3 + 1
	g.produceCommitted(l, event("live", "no-stream", "l0"))
	g.converge(1)
	g.crash(behind)
	if plain > 0 {
		recs := make([]batch.Record, plain)
		for i := range recs {
			recs[i] = batch.Record{Value: []byte("plain")}
		}
		g.produceCommitted(l, batch.Build(recs, batch.None))
	}
	for i := 1; i < 20; i++ {
		g.produceCommitted(l, event("live", fmt.Sprint(i-1), fmt.Sprint("l", i)))
	}
	for i := range 10 {
		g.produceCommitted(l, event("gone", "any", fmt.Sprint("g", i)))
	}
	g.produceCommitted(l, streamOp("gone", streams.OpDelete, ""))
	g.produceCommitted(l, streamOp("live", streams.OpMetadata, `{"max_count":3,"max_age_ms":-1,"truncate_before":-1}`))
	g.produceCommitted(l, event("other", "any", "o0"))
	end := g.parts[l].HighWatermark()
	for _, id := range g.c.IDs() {
		if id == behind {
			continue
		}
		if err := g.parts[id].Clean(g.clock.Now().UnixMilli()); err != nil {
			t.Fatalf("clean on %d: %v", id, err)
		}
	}
	clear(g.exposed) // the cleaner rewrote batches a high watermark exposed
	want := map[string][]streams.Entry{}
	for _, s := range []string{"live", "gone", "other"} {
		want[s] = streamEntries(t, g.parts[l], s)
	}
	if len(want["live"]) != 3 || want["live"][0].Revision != 17 || len(want["gone"]) != 0 {
		t.Fatalf("leader's index after cleaning: live %+v, gone %+v", want["live"], want["gone"])
	}

	g.c.Net.Isolate(behind, g.c.IDs())
	g.restart(behind)
	f := g.parts[behind]
	// The background build holds at its first chunk until the test saw
	// the index refused as being built.
	release := make(chan struct{})
	if plain > 0 {
		var held bool
		f.afterIndexChunk = func() {
			if !held {
				held = true
				<-release
			}
		}
	}
	desc, index := g.stageLeadersCopy(l, behind)
	if desc.NextOffset <= 1 {
		t.Fatalf("leader's snapshot at %d ends at offset %d: nothing past the follower's log", index, desc.NextOffset)
	}
	g.c.Net.Heal()
	g.converge(end)
	snap, err := f.raft.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() < index {
		t.Fatalf("follower's snapshot at %d (%v), want the leader's at %d installed", snap.GetMetadata().GetIndex(), err, index)
	}
	if plain > 0 {
		if _, err := f.StreamIndex(); !errors.Is(err, ErrStreamIndexBuilding) {
			t.Fatalf("the follower's stream index while its build holds: %v", err)
		}
		close(release)
	}
	// A background build runs off the simulation: wait in real time.
	deadline := time.Now().Add(10 * time.Second)
	for _, err := f.StreamIndex(); err != nil; _, err = f.StreamIndex() {
		if !errors.Is(err, ErrStreamIndexBuilding) || time.Now().After(deadline) {
			t.Fatalf("the follower's stream index: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	for s, w := range want {
		if got := streamEntries(t, f, s); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("follower's index of %s %+v, the leader's %+v", s, got, w)
		}
	}

	if err := g.c.Do(l, func(r *replica.Replica) error { r.TransferLeader(behind); return nil }); err != nil {
		t.Fatal(err)
	}
	g.run("the follower to lead", func() bool { id, ok := g.c.Leader(); return ok && id == behind }, 10_000)
	if _, err := f.Append(event("live", "18", "stale")); !errors.Is(err, streams.ErrWrongExpectedRevision) {
		t.Fatalf("stale expected revision on the new leader: %v", err)
	}
	res := g.produceCommitted(behind, event("live", "19", "l20"))
	if len(res.Streams) != 1 || res.Streams[0].First != 20 {
		t.Fatalf("append at expected revision 19 on the new leader: %+v", res.Streams)
	}
	g.converge(res.LastOffset + 1)
	g.sameEverywhere()
}
