package partition

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// heldEverywhere checks whether every live replica holds stream for an
// open transaction (a reader of it would wait).
func (g *group) heldEverywhere(stream string, want bool) {
	g.t.Helper()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, id := range g.c.IDs() {
		if !g.c.Node(id).Up {
			continue
		}
		err := g.parts[id].WaitStreamFree(done, stream)
		if held := errors.Is(err, context.Canceled); held != want || (err != nil && !held) {
			g.t.Fatalf("node %d: waiting for stream %s: %v, want held %v", id, stream, err, want)
		}
	}
}

// revisionsEverywhere checks every live replica's revisions.
func (g *group) revisionsEverywhere(how string, want map[string]int64) {
	g.t.Helper()
	for _, id := range g.c.IDs() {
		if g.c.Node(id).Up {
			wantRevisions(g.t, g.parts[id], fmt.Sprintf("node %d %s", id, how), want)
		}
	}
}

// TestReplicatedStreamTxnHeldUntilMarker: on a replicated stream topic a
// transaction's events get their revisions when proposed, but every
// replica's index shows them only once the COMMIT marker is applied, and
// an ABORT marker drops them; meanwhile the streams they touch refuse
// other writes as busy and readers wait, on every replica. A follower
// restarted after a later append moved its index past the transaction's
// records holds them again, and so does a new leader after the old one
// crashed before the marker. Every replica ends with the same index.
func TestReplicatedStreamTxnHeldUntilMarker(t *testing.T) {
	g := newGroup(t, 41, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	l := g.leader()
	g.produceCommitted(l, event("a", "no-stream", "a0"))
	begin(t, g.parts[l], 1, 0)
	res := g.produceCommitted(l, streamTxnBatch(t, 1, 0, streamEvent("a", "a1", "0"), streamEvent("b", "b0", "no-stream")))
	if got := res.Streams; len(got) != 2 || got[0].First != 1 || got[1].First != 0 {
		t.Fatalf("transactional append gave %+v, want a at 1 and b at 0", got)
	}
	if _, err := g.parts[l].Append(event("a", "any", "x")); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("appending to a held stream: %v, want ErrStreamBusy", err)
	}
	last := g.produceCommitted(l, event("c", "no-stream", "c0"))
	g.converge(last.LastOffset + 1)
	g.revisionsEverywhere("before the marker", map[string]int64{"a": 0, "b": -1, "c": 0})
	g.heldEverywhere("a", true)
	g.heldEverywhere("c", false)

	follower := l%3 + 1
	g.crash(follower)
	g.restart(follower)
	g.converge(last.LastOffset + 1)
	g.revisionsEverywhere("a follower restarted before the marker", map[string]int64{"a": 0, "b": -1, "c": 0})
	g.heldEverywhere("b", true)

	// The leader goes before the marker: the next holds the streams too.
	g.crash(l)
	next := g.leader()
	if _, err := g.parts[next].Append(event("b", "any", "y")); !errors.Is(err, ErrStreamBusy) {
		t.Fatalf("appending to a held stream on the new leader: %v, want ErrStreamBusy", err)
	}
	commit, err := g.parts[next].WriteMarker(1, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.waitCommitted(next, commit); err != nil {
		t.Fatal(err)
	}
	g.restart(l)
	g.converge(commit.LastOffset + 1)
	g.revisionsEverywhere("after COMMIT", map[string]int64{"a": 1, "b": 0, "c": 0})
	g.heldEverywhere("a", false)
	g.heldEverywhere("b", false)

	// An aborted transaction leaves its streams as they were, and free.
	begin(t, g.parts[next], 2, 0)
	g.produceCommitted(next, streamTxnBatch(t, 2, 0, streamEvent("b", "b1", "0")))
	abort := g.produceMarker(next, 2, false)
	plain := g.produceCommitted(next, event("b", "0", "b1-plain"))
	if len(plain.Streams) != 1 || plain.Streams[0].First != 1 {
		t.Fatalf("append after the ABORT: %+v, want b at 1", plain.Streams)
	}
	g.converge(max(abort.LastOffset, plain.LastOffset) + 1)
	g.revisionsEverywhere("after the aborted transaction", map[string]int64{"a": 1, "b": 1, "c": 0})
	g.sameEverywhere()
	for _, s := range []string{"a", "b", "c"} {
		want := streamEntries(t, g.parts[next], s)
		for _, id := range g.c.IDs() {
			if got := streamEntries(t, g.parts[id], s); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("node %d index of %s %+v, the leader's %+v", id, s, got, want)
			}
		}
	}
}

// produceMarker writes producer pid's marker on node and waits until it
// is committed.
func (g *group) produceMarker(node uint64, pid int64, commit bool) AppendResult {
	g.t.Helper()
	return g.produceMarkerFrom(node, pid, commit, 0)
}

// produceMarkerFrom is produceMarker from a coordinator of epoch
// coordinatorEpoch.
func (g *group) produceMarkerFrom(node uint64, pid int64, commit bool, coordinatorEpoch int32) AppendResult {
	g.t.Helper()
	res, err := g.parts[node].WriteMarker(pid, 0, commit, coordinatorEpoch)
	if err != nil {
		g.t.Fatal(err)
	}
	if err := g.waitCommitted(node, res); err != nil {
		g.t.Fatal(err)
	}
	return res
}

// TestReplicatedStreamTxnWaitsForPendingMarker: while a marker is proposed
// and not applied, the held table still has its transaction: a write to a
// stream it held, and the producer's next transaction, wait for it to be
// applied (errStreamPending) instead of being checked against the
// transaction it ends.
func TestReplicatedStreamTxnWaitsForPendingMarker(t *testing.T) {
	g := newGroup(t, 43, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams = false, true })
	l := g.leader()
	p := g.parts[l]
	begin(t, p, 1, 0)
	g.produceCommitted(l, streamTxnBatch(t, 1, 0, streamEvent("a", "a0", "no-stream")))
	marker, err := p.WriteMarker(1, 0, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	propose := func(records []byte) error {
		headers, recs, err := validateBatches(records, p.cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.proposeBatches(records, headers, recs, p.cfg, anyTerm)
		return err
	}
	if err := propose(event("a", "0", "a1")); !errors.Is(err, errStreamPending) {
		t.Fatalf("append to a stream the pending marker releases: %v, want errStreamPending", err)
	}
	begin(t, p, 1, 0)
	if err := propose(streamTxnBatch(t, 1, 1, streamEvent("z", "z0", "no-stream"))); !errors.Is(err, errStreamPending) {
		t.Fatalf("the producer's next transaction while its marker is pending: %v, want errStreamPending", err)
	}
	if err := g.waitCommitted(l, marker); err != nil {
		t.Fatal(err)
	}
	res := g.produceCommitted(l, streamTxnBatch(t, 1, 1, streamEvent("z", "z0", "no-stream"), streamEvent("a", "a1", "0")))
	if got := res.Streams; len(got) != 2 || got[0].First != 0 || got[1].First != 1 {
		t.Fatalf("the next transaction once the marker applied: %+v, want z at 0 and a at 1", got)
	}
	end := g.produceMarker(l, 1, true)
	g.converge(end.LastOffset + 1)
	g.revisionsEverywhere("after both transactions", map[string]int64{"a": 1, "z": 0})
}

// TestReplicatedStreamTxnAcrossSnapshot: a follower down while a
// transaction wrote its events, and behind the leader's compacted Raft
// log, installs the leader's snapshot: the index built from the installed
// log holds the open transaction's streams, and the COMMIT marker then
// gives them the leader's revisions.
func TestReplicatedStreamTxnAcrossSnapshot(t *testing.T) {
	g := newGroup(t, 47, []uint64{1, 2, 3}, func(c *Config) {
		c.DeleteSegments, c.Streams = false, true
		c.Storage.SegmentBytes = 400
	})
	l := g.leader()
	behind := l%3 + 1
	g.produceCommitted(l, event("a", "no-stream", "a0"))
	g.converge(1)
	g.crash(behind)
	begin(t, g.parts[l], 1, 0)
	g.produceCommitted(l, streamTxnBatch(t, 1, 0, streamEvent("a", "a1", "0"), streamEvent("b", "b0", "no-stream")))
	var last AppendResult
	for i := range 10 {
		last = g.produceCommitted(l, event("c", "any", fmt.Sprint("c", i)))
	}
	for _, id := range g.c.IDs() {
		if id != behind {
			if err := g.parts[id].CompactRaftAtApplied(); err != nil {
				t.Fatalf("compact on %d: %v", id, err)
			}
		}
	}
	g.c.Net.Isolate(behind, g.c.IDs())
	g.restart(behind)
	desc, _ := g.stageLeadersCopy(l, behind)
	if desc.NextOffset != last.LastOffset+1 {
		t.Fatalf("leader's snapshot ends at %d, want %d", desc.NextOffset, last.LastOffset+1)
	}
	g.c.Net.Heal()
	g.converge(last.LastOffset + 1)
	g.revisionsEverywhere("before the marker", map[string]int64{"a": 0, "b": -1, "c": 9})
	g.heldEverywhere("a", true)
	g.heldEverywhere("b", true)
	commit := g.produceMarker(l, 1, true)
	g.converge(commit.LastOffset + 1)
	g.revisionsEverywhere("after COMMIT", map[string]int64{"a": 1, "b": 0, "c": 9})
	g.heldEverywhere("a", false)
	for _, s := range []string{"a", "b"} {
		want := streamEntries(t, g.parts[l], s)
		if got := streamEntries(t, g.parts[behind], s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("follower's index of %s %+v, the leader's %+v", s, got, want)
		}
	}
}
