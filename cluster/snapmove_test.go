package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
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
	if _, err := tn.nodes[1].CreateTopicReplicated("trimmed", 1, 3, configs, false); err != nil {
		t.Fatal(err)
	}
	old := replicaSet(t, tn.nodes[1], "trimmed")
	var added int32
	for id := range tn.nodes {
		if !slices.Contains(old, id) {
			added = id
		}
	}
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
	target := append(slices.DeleteFunc(slices.Clone(old), func(n int32) bool { return n == lead }), added)
	slices.Sort(target)
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if _, err := tn.nodes[added].Reassign(ctx, "trimmed", 0, target); err != nil {
		t.Fatal(err)
	}
	tn.waitMoved("trimmed", target)
	newLead := tn.leader("trimmed", 0)
	appendKeyed(t, tn.nodes[newLead], "trimmed", "after", "the move")
	checkCopied(t, tn, "trimmed", newLead, added, start, before)
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
