package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/client"
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
	tc.waitRefilled(t, victim, topic, partitions)
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

// A server of the initial three wiped while a stream topic's cleaner
// removed a deleted stream's events (the groups' Raft logs compacted past
// the bootstrap) comes back: its replica is refilled through the leader's
// snapshot and its stream index built from the installed log. Once it
// leads, ReadStream answers every stream with the revisions, ids and
// positions acknowledged before, a stale expected revision is refused with
// the stream's actual one, and the next exact revision is appended.
func TestServerWipedNodeRefillsStreamTopic(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*joinWaitMax)
	defer cancel()
	const topic = "es-wiped"
	configs := map[string]string{"cleanup.policy": "stream", "segment.bytes": "300"}
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated(topic, 1, 3, configs, false); err != nil {
		t.Fatal(err)
	}
	lead := tc.leaderOf(topic, 0)
	c, err := client.New("http://"+tc.servers[lead].HTTPAddr(), client.WithRetry(20, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	appendN := func(stream string, n int) []client.RecordedEvent {
		var out []client.RecordedEvent
		for i := range n {
			id := uuid.NewString()
			res, err := c.Append(ctx, topic, stream, client.ExpectedAfter(int64(i)-1), client.EventData{ID: id, Type: "Tick", Data: []byte("{}")})
			if err != nil {
				t.Fatalf("append %d to %s: %v", i, stream, err)
			}
			out = append(out, client.RecordedEvent{Revision: res.LastRevision, Position: res.Position, ID: id})
		}
		return out
	}
	appendN("gone", 10)
	want := map[string][]client.RecordedEvent{"kept": appendN("kept", 12)}
	if _, err := c.DeleteStream(ctx, topic, "gone", client.SoftDelete, client.Any); err != nil {
		t.Fatal(err)
	}
	want["later"] = appendN("later", 8) // past the deletion, so its segment seals

	victim := int32(3) // a follower, so the leader's log is the one checked compacted
	if victim == lead {
		victim = 2
	}
	lp, err := tc.servers[lead].Cluster().Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range tc.servers {
		p, err := s.Cluster().Partition(topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, fmt.Sprintf("node %d to apply the appends", id), func() bool { return p.HighWatermark() >= lp.HighWatermark() })
	}
	tc.stop(victim)
	tc.fs[victim] = vfs.NewMem()
	for _, s := range tc.servers {
		s.Cluster().CleanOnce(time.Now().UnixMilli())
	}
	if first, err := lp.RaftStorage().FirstIndex(); err != nil || first <= 2 {
		t.Fatalf("Raft log from %d (%v): the stream cleaner compacted nothing", first, err)
	}

	tc.restart(victim)
	back := tc.servers[victim].Cluster()
	waitUntil(t, "the wiped node's replica refilled", func() bool {
		return len(back.Reassignments()) == 0 && back.NodeState(victim) == "ACTIVE" && slices.Contains(back.InSync(topic, 0), victim)
	})
	// What follows has its own bound: on a loaded machine the refill can
	// take most of the first.
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), 2*joinWaitMax)
	defer cancel()
	lead = tc.leaderOf(topic, 0)
	if err := tc.servers[lead].Cluster().TransferLeader(ctx, topic, 0, victim); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the refilled node to lead", func() bool {
		l, err := back.Leader(topic, 0)
		return err == nil && l.Local
	})
	vc, err := client.New("http://"+tc.servers[victim].HTTPAddr(), client.WithRetry(20, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	for stream, events := range want {
		i := 0
		for ev, err := range vc.ReadStreamAll(ctx, topic, stream) {
			if err != nil {
				t.Fatalf("read %s on the refilled node: %v", stream, err)
			}
			if i >= len(events) || ev.Revision != events[i].Revision || ev.ID != events[i].ID || ev.Position != events[i].Position {
				t.Fatalf("%s on the refilled node: event %d is %s at revision %d %v, acknowledged %+v", stream, i, ev.ID, ev.Revision, ev.Position, events)
			}
			i++
		}
		if i != len(events) {
			t.Fatalf("%s on the refilled node: %d events, %d acknowledged", stream, i, len(events))
		}
	}
	page, err := vc.ReadStream(ctx, topic, "gone")
	if err == nil && len(page.Events) > 0 {
		t.Fatalf("the deleted stream reads %d events on the refilled node", len(page.Events))
	}
	_, err = vc.Append(ctx, topic, "kept", client.Exact(10), client.EventData{Type: "Late", Data: []byte("{}")})
	var wrong *client.WrongExpectedRevisionError
	if !errors.As(err, &wrong) || wrong.Actual != 11 {
		t.Fatalf("append at revision 10 of kept (at 11): %v", err)
	}
	res, err := vc.Append(ctx, topic, "kept", client.Exact(11), client.EventData{Type: "Next", Data: []byte("{}")})
	if err != nil || res.LastRevision != 12 {
		t.Fatalf("append at revision 11 of kept: %+v %v", res, err)
	}
}
