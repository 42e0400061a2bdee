package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/streams"
)

// TestClusterMovesCompactedPartition: four nodes; retention removed the
// first segments of an RF 3 partition (so its Raft log no longer starts
// after the bootstrap snapshot), then the partition is moved onto the
// fourth node. The move completes: the new replica catches up through the
// leader's snapshot and the copy of the data below it, and holds exactly
// the leader's records from the same log start.
func TestClusterMovesCompactedPartition(t *testing.T) {
	tn := startNodes(t, 4)
	configs := map[string]string{"segment.bytes": "300", "retention.bytes": "600"}
	old, added := createOnThreeOfFour(tn, "trimmed", configs)
	lead := tn.leader("trimmed", 0)
	for i := range 60 {
		appendKeyed(t, tn.nodes[lead], "trimmed", fmt.Sprint("k", i), fmt.Sprint("v", i))
	}
	lp, err := tn.nodes[lead].Partition("trimmed", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Every replica applied everything, so retention, bounded by what
	// each applied, leaves them all the same log start.
	for _, id := range old {
		q, err := tn.nodes[id].Partition("trimmed", 0)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("node %d to apply the appends", id), func() bool { return q.HighWatermark() >= lp.HighWatermark() })
	}
	for _, c := range tn.nodes {
		c.CleanOnce(time.Now().UnixMilli())
	}
	first, err := lp.RaftStorage().FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if lp.LogStartOffset() == 0 || first <= replicaBootstrapIndex+1 {
		t.Fatalf("log start %d, Raft log from %d: retention removed nothing", lp.LogStartOffset(), first)
	}
	// The leader sends the new replica its snapshot, and the data below
	// it from its own log start (each replica's retention runs by itself).
	start, before := lp.LogStartOffset(), records(t, lp)
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	moveOffLeader(ctx, tn, "trimmed", old, lead, added)
	newLead := tn.leader("trimmed", 0)
	appendKeyed(t, tn.nodes[newLead], "trimmed", "after", "the move")
	checkCopied(t, tn, "trimmed", newLead, added, start, before)
}

// TestClusterMovesPartitionTrimmedInsideABatch: DeleteRecords moved an RF
// 3 partition's log start inside a batch of three records (compacting its
// Raft log past it), then the partition is moved onto the fourth node.
// The new replica copies the data below the leader's snapshot from the
// batch holding the log start, and serves the same records from the same
// log start.
func TestClusterMovesPartitionTrimmedInsideABatch(t *testing.T) {
	tn := startNodes(t, 4)
	old, added := createOnThreeOfFour(tn, "trimmed", map[string]string{"segment.bytes": "300"})
	lead := tn.leader("trimmed", 0)
	lp, err := tn.nodes[lead].Partition("trimmed", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	for i := range 20 {
		recs := make([]batch.Record, 3)
		for j := range recs {
			recs[j] = batch.Record{Offset: int64(j), TimestampMs: time.Now().UnixMilli(), Value: []byte(fmt.Sprint("v", 3*i+j))}
		}
		res, err := lp.Append(batch.Build(recs, batch.None))
		if err == nil {
			err = lp.WaitAppended(ctx, res, true)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	const start = 3*15 + 1 // the second record of the sixteenth batch
	if got, err := lp.DeleteRecordsBefore(context.Background(), start); err != nil || got != start {
		t.Fatalf("DeleteRecords to %d: start %d, %v", start, got, err)
	}
	if _, d := snapshotOf(t, lp); d.LogStartOffset != start || d.NextOffset <= start {
		t.Fatalf("the leader's snapshot holds [%d, %d): want the copy to start at %d, inside a batch", d.LogStartOffset, d.NextOffset, start)
	}
	before := records(t, lp)
	moveOffLeader(ctx, tn, "trimmed", old, lead, added)
	newLead := tn.leader("trimmed", 0)
	appendKeyed(t, tn.nodes[newLead], "trimmed", "after", "the move")
	checkCopied(t, tn, "trimmed", newLead, added, start, before)
}

// createOnThreeOfFour creates topic with one partition of three replicas
// on tn's four nodes, and names them and the node holding none.
func createOnThreeOfFour(tn *testNodes, topic string, configs map[string]string) (replicas []int32, spare int32) {
	tn.t.Helper()
	if _, err := tn.nodes[1].CreateTopicReplicated(topic, 1, 3, configs, false); err != nil {
		tn.t.Fatal(err)
	}
	replicas = replicaSet(tn.t, tn.nodes[1], topic)
	for id := range tn.nodes {
		if !slices.Contains(replicas, id) {
			spare = id
		}
	}
	return replicas, spare
}

// moveOffLeader moves topic-0's replica on its leader lead to node to,
// the others staying, and waits for the move to complete.
func moveOffLeader(ctx context.Context, tn *testNodes, topic string, replicas []int32, lead, to int32) {
	tn.t.Helper()
	target := append(slices.DeleteFunc(slices.Clone(replicas), func(n int32) bool { return n == lead }), to)
	slices.Sort(target)
	if _, err := tn.nodes[to].Reassign(ctx, topic, 0, target); err != nil {
		tn.t.Fatal(err)
	}
	tn.waitMoved(topic, target)
}

// checkCopied waits for node n to apply what the leader's node holds, and
// checks n's replica starts at start, holds before (the records of the
// replica that sent it the snapshot, as they were) and then the leader's
// records.
func checkCopied(t *testing.T, tn *testNodes, topic string, leader, n int32, start int64, before []string) {
	t.Helper()
	lp, err := tn.nodes[leader].Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	np, err := tn.nodes[n].Partition(topic, 0)
	if err != nil {
		t.Fatalf("node %d: %v", n, err)
	}
	waitUntil(t, fmt.Sprintf("node %d to apply everything", n), func() bool { return np.HighWatermark() >= lp.HighWatermark() })
	if np.LogStartOffset() != start {
		t.Fatalf("node %d's log starts at %d, the sender's at %d", n, np.LogStartOffset(), start)
	}
	got := records(t, np)
	if !slices.Equal(got[:min(len(got), len(before))], before) {
		t.Fatalf("node %d holds %v, the sender held %v", n, got, before)
	}
	// Where both hold records (the leader's own retention may have
	// moved its start) they are the same.
	from := max(start, lp.LogStartOffset())
	if a, b := recordsFrom(t, got, from), recordsFrom(t, records(t, lp), from); !slices.Equal(a, b) {
		t.Fatalf("node %d holds %v from offset %d, the leader %v", n, a, from, b)
	}
	t.Logf("node %d holds the %d records from offset %d", n, len(got), start)
}

// recordsFrom is the offset:value records at or past offset from.
func recordsFrom(t *testing.T, recs []string, from int64) []string {
	t.Helper()
	var out []string
	for _, r := range recs {
		var off int64
		if _, err := fmt.Sscanf(r, "%d:", &off); err != nil {
			t.Fatal(err)
		}
		if off >= from {
			out = append(out, r)
		}
	}
	return out
}

// appendEvent appends one event-store record to stream at the expected
// revision and waits for acks=all; it returns the revision it got.
func appendEvent(t *testing.T, c *Cluster, topic, stream, expected, id string) int64 {
	t.Helper()
	p, err := c.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(eventRecord(stream, expected, id))
	if err != nil {
		t.Fatalf("append %s to %s at %s on node %d: %v", id, stream, expected, c.NodeID(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatalf("append %s on node %d: %v", id, c.NodeID(), err)
	}
	if len(res.Streams) != 1 {
		t.Fatalf("append %s: streams %+v", id, res.Streams)
	}
	return res.Streams[0].First
}

func eventRecord(stream, expected, id string) []byte {
	return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(stream), Value: []byte("{}"),
		Headers: []batch.RecordHeader{{Key: streams.HeaderExpectedRevision, Value: []byte(expected)}, {Key: streams.HeaderID, Value: []byte(id)}}}},
		batch.None)
}

// streamEntriesOf is a replica's index entries of stream, once its index
// is there (it may be built in the background after a snapshot install).
func streamEntriesOf(t *testing.T, p *partition.Partition, stream string) string {
	t.Helper()
	var x *streams.Index
	waitUntil(t, "the stream index", func() bool {
		var err error
		x, err = p.StreamIndex()
		return err == nil
	})
	es, err := x.Entries(stream, 0, false, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(es)
}

// TestClusterMovesStreamTopic: four nodes; on an RF 3 stream topic a
// stream is deleted and the stream cleaner removes its events (leaving
// the Raft logs compacted past the bootstrap), then the partition is
// moved onto the fourth node. The new replica installs the leader's
// snapshot and builds its stream index from the installed log; once it
// leads, its index lists every stream with the revisions the old leader
// gave, it refuses a stale expected revision and appends at the next.
func TestClusterMovesStreamTopic(t *testing.T) {
	tn := startNodes(t, 4)
	configs := map[string]string{"cleanup.policy": "stream", "segment.bytes": "300"}
	old, added := createOnThreeOfFour(tn, "orders", configs)
	lead := tn.leader("orders", 0)
	for i := range 10 {
		appendEvent(t, tn.nodes[lead], "orders", "gone", "any", fmt.Sprint("g", i))
	}
	appendEvent(t, tn.nodes[lead], "orders", "kept", "no-stream", "k0")
	for i := 1; i < 12; i++ {
		appendEvent(t, tn.nodes[lead], "orders", "kept", fmt.Sprint(i-1), fmt.Sprint("k", i))
	}
	lp, err := tn.nodes[lead].Partition("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := lp.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte("gone"),
		Headers: []batch.RecordHeader{{Key: streams.HeaderStreamOp, Value: []byte(streams.OpDelete)}}}}, batch.None))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if err := lp.WaitAppended(ctx, res, true); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		appendEvent(t, tn.nodes[lead], "orders", "later", "any", fmt.Sprint("l", i)) // past the deletion, so its segment seals
	}
	for _, id := range old {
		q, err := tn.nodes[id].Partition("orders", 0)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("node %d to apply the appends", id), func() bool { return q.HighWatermark() >= lp.HighWatermark() })
	}
	for _, c := range tn.nodes {
		c.CleanOnce(time.Now().UnixMilli())
	}
	if first, err := lp.RaftStorage().FirstIndex(); err != nil || first <= replicaBootstrapIndex+1 {
		t.Fatalf("Raft log from %d (%v): the stream cleaner compacted nothing", first, err)
	}
	want := map[string]string{}
	for _, s := range []string{"gone", "kept", "later"} {
		want[s] = streamEntriesOf(t, lp, s)
	}
	if want["gone"] != "[]" {
		t.Fatalf("the deleted stream's events are still listed: %s", want["gone"])
	}

	moveOffLeader(ctx, tn, "orders", old, lead, added)
	if err := tn.nodes[added].TransferLeader(ctx, "orders", 0, added); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, fmt.Sprintf("node %d to lead, ready", added), func() bool {
		l, err := tn.nodes[added].Leader("orders", 0)
		return err == nil && l.Local
	})
	ap, err := tn.nodes[added].Partition("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	for s, w := range want {
		if got := streamEntriesOf(t, ap, s); got != w {
			t.Fatalf("the new replica's index of %s %s, the old leader's %s", s, got, w)
		}
	}
	if _, err := ap.Append(eventRecord("kept", "10", "stale")); !errors.Is(err, streams.ErrWrongExpectedRevision) {
		t.Fatalf("stale expected revision on the new replica: %v", err)
	}
	if rev := appendEvent(t, tn.nodes[added], "orders", "kept", "11", "k12"); rev != 12 {
		t.Fatalf("append at expected revision 11 got revision %d, want 12", rev)
	}
}
