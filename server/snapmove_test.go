package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/storage/vfs"
)

// A server of the initial three whose data directory was wiped comes back
// while DeleteRecords removed the first segments of every partition (the
// groups' Raft logs no longer start after their bootstrap snapshots): the
// refill of its replicas completes all the same, each new replica catching
// up through its leader's snapshot and the copy of the data below it, and
// holds exactly the leader's records from the same log start.
func TestServerWipedNodeRefillsTrimmedTopic(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*joinWaitMax)
	defer cancel()
	const topic, partitions, trimTo = "trimmed", 2, 30
	client := newFailoverClient(t, tc, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(client)
	segmentBytes := "300"
	res, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"segment.bytes": &segmentBytes}, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	for i := range int32(partitions) {
		tc.leaderOf(topic, i)
	}
	acked := produceAcked(ctx, t, client, topic, partitions, "before", 40)

	const victim = 3
	tc.stop(victim)
	tc.fs[victim] = vfs.NewMem()
	for v, a := range produceAcked(ctx, t, client, topic, partitions, "away", 40) {
		acked[v] = a
	}
	var below kadm.Offsets
	for i := range int32(partitions) {
		below.AddOffset(topic, i, trimTo, -1)
	}
	deleted, err := adm.DeleteRecords(ctx, below)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatalf("delete records below %d: %v", trimTo, err)
	}
	for id, s := range tc.servers {
		for i := range int32(partitions) {
			p, err := s.Cluster().Partition(topic, i)
			if err != nil {
				t.Fatalf("node %d: %v", id, err)
			}
			waitUntil(t, fmt.Sprintf("node %d to apply the deletion of %s-%d", id, topic, i), func() bool { return p.LogStartOffset() == trimTo })
			if first, err := p.RaftStorage().FirstIndex(); err != nil || first <= 2 {
				t.Fatalf("node %d %s-%d: Raft log from %d (%v): not compacted", id, topic, i, first, err)
			}
		}
	}

	tc.restart(victim)
	back := tc.servers[victim].Cluster()
	for id, s := range tc.servers {
		waitUntil(t, fmt.Sprintf("node %d sees every partition refilled and in sync", id), func() bool {
			if len(s.Cluster().Reassignments()) > 0 {
				return false
			}
			for i := range int32(partitions) {
				l, err := s.Cluster().Leader(topic, i)
				if err != nil || !l.Local {
					continue
				}
				if in := s.Cluster().InSync(topic, i); !slices.Contains(in, victim) || len(in) != 3 {
					return false
				}
			}
			return back.NodeState(victim) == "ACTIVE"
		})
	}
	kept := map[string]ack{}
	for v, a := range acked {
		if a.offset >= trimTo {
			kept[v] = a
		}
	}
	for id := range tc.servers {
		if held := tc.checkLocalReplicas(t, id, topic, kept); held != partitions {
			t.Fatalf("node %d holds %d replicas, want %d", id, held, partitions)
		}
		for i := range int32(partitions) {
			p, err := tc.servers[id].Cluster().Partition(topic, i)
			if err != nil {
				t.Fatal(err)
			}
			held := replicaRecords(t, p)
			if start := p.LogStartOffset(); start != trimTo || len(held) != len(recordsOf(kept, i)) {
				t.Fatalf("node %d %s-%d: log from %d holding %d records, want from %d the %d acknowledged there",
					id, topic, i, start, len(held), trimTo, len(recordsOf(kept, i)))
			}
		}
	}
}

// recordsOf is the acknowledged values of one partition.
func recordsOf(acked map[string]ack, partition int32) []string {
	var out []string
	for v, a := range acked {
		if a.partition == partition {
			out = append(out, v)
		}
	}
	return out
}
