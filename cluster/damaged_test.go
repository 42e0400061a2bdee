package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestClusterRenewsDamagedReplica: a follower stopped and its files
// damaged where recovery may not repair them (its segment cut below the
// recovery point; its raft-state failing its CRC, so the directory cannot
// even say whose it is) refuses them when it starts again and asks for a
// new copy: the state replaces its replica by one at a new placement on
// the same node, which copies the partition from the leader, and the node
// serves every acknowledged record again, with nothing an operator did.
func TestClusterRenewsDamagedReplica(t *testing.T) {
	for _, damage := range []struct {
		name, file string
		edit       func([]byte) []byte
	}{
		{"segment cut", "00000000000000000000.log", func(b []byte) []byte { return b[:len(b)/2] }},
		{"raft-state flipped", "raft-state", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }},
	} {
		t.Run(damage.name, func(t *testing.T) { renewsDamagedReplica(t, damage.file, damage.edit) })
	}
}

func renewsDamagedReplica(t *testing.T, file string, edit func([]byte) []byte) {
	tn := startNodes(t, 3)
	a, victim, damagedID := startDamageVictim(tn, "damaged")
	q, err := tn.nodes[victim].Partition("damaged", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the victim to hold some records", func() bool { return q.HighWatermark() >= 20 })
	tn.stop(victim)

	name := "/data/damaged-0/" + file
	data, err := vfs.ReadFile(tn.fs[victim], name)
	if err == nil {
		err = vfs.WriteFileAtomic(tn.fs[victim], name, edit(data))
	}
	if err != nil {
		t.Fatal(err)
	}
	tn.restart(victim)

	renewed := tn.waitRenewed(victim, "damaged", damagedID)
	acked := appendMore(tn, "damaged", a.finish(t))

	tn.checkHolds("damaged", tn.leader("damaged", 0), slices.Collect(maps.Keys(tn.nodes)), acked)
	t.Logf("node %d's damaged replica %#x renewed as %#x; %d acknowledged appends", victim, damagedID, renewed, len(acked))
}

// TestClusterRenewsReplicaDamagedOnRead: a follower's segment gets a bad
// batch below its recovery point (which the open does not validate); made
// leader, the first read of it takes the partition offline there. The
// replica hands its leadership to another, which serves writes again,
// and is renewed from it.
func TestClusterRenewsReplicaDamagedOnRead(t *testing.T) {
	tn := startNodes(t, 3)
	a, victim, damagedID := startDamageVictim(tn, "flipped")
	q, err := tn.nodes[victim].Partition("flipped", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Enough records that the open, which reads batch headers from an
	// offset index entry at most 4 KiB before the log's end, does not
	// reach the second batch; and the victim told every entry it holds
	// is committed, so that its open finds the applied offset at the end
	// rather than by counting entries from the first (which would read
	// the damaged header and take the replica for damaged at its open,
	// before it could lead).
	waitUntil(t, "the victim to hold some records", func() bool { return q.HighWatermark() >= 400 })
	acked := a.finish(t)
	waitUntil(t, "the victim to know its records committed", func() bool { return q.HighWatermark() == q.LogEndOffset() })
	tn.stop(victim)
	const segment = "/data/flipped-0/00000000000000000000.log"
	data, err := vfs.ReadFile(tn.fs[victim], segment)
	if err == nil {
		err = testio.FlipSecondBatchMagic(data)
	}
	if err == nil {
		err = vfs.WriteFileAtomic(tn.fs[victim], segment, data)
	}
	if err != nil {
		t.Fatal(err)
	}
	tn.restart(victim)
	waitUntil(t, "the victim to lead", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l, err := tn.nodes[victim].Leader("flipped", 0)
		if err == nil && l.Node == victim {
			return true
		}
		if l.Node > 0 {
			_ = tn.nodes[l.Node].TransferLeader(ctx, "flipped", 0, victim)
		}
		return false
	})
	p, err := tn.nodes[victim].Partition("flipped", 0)
	if err != nil {
		t.Fatal(err)
	}
	// From offset 1, the damaged batch: its header is parsed to find it.
	if _, err := p.Read(1, 1); !errors.Is(err, partition.ErrStorageFailed) {
		t.Fatalf("read of the damaged copy: %v, want ErrStorageFailed (node %d's replica now %#x, damaged %#x)", err, victim, tn.localReplicaOf(victim, "flipped"), damagedID)
	}
	renewed := tn.waitRenewed(victim, "flipped", damagedID)
	acked = appendMore(tn, "flipped", acked)
	tn.checkHolds("flipped", tn.leader("flipped", 0), slices.Collect(maps.Keys(tn.nodes)), acked)
	t.Logf("node %d's replica %#x, damaged on read while it led, renewed as %#x; %d acknowledged appends", victim, damagedID, renewed, len(acked))
}

// appendMore appends 40 records more with a new appender (the first may
// have spent its attempts while the partition had no leader, or a damaged
// one) and adds them to acked.
func appendMore(tn *testNodes, topic string, acked map[int64]string) map[int64]string {
	tn.t.Helper()
	b := startAppender(tn, topic)
	waitUntil(tn.t, "appends after the renewal", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.acked) >= 40 })
	maps.Copy(acked, b.finish(tn.t))
	return acked
}

// startDamageVictim creates topic (one partition, three replicas), starts
// an appender and waits for some appends, and names a follower of the
// partition and its replica id: the one a test damages.
func startDamageVictim(tn *testNodes, topic string) (*appender, int32, uint64) {
	t := tn.t
	t.Helper()
	if _, err := tn.nodes[1].CreateTopicReplicated(topic, 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	a := startAppender(tn, topic)
	waitUntil(t, "appends before the damage", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 40 })
	lead := tn.leader(topic, 0)
	for id := range tn.nodes {
		if id != lead {
			return a, id, tn.localReplicaOf(id, topic)
		}
	}
	t.Fatal("no follower")
	return nil, 0, 0
}

// waitRenewed waits until node id's damaged replica of topic-0 is renewed
// (the node holds another id and no move runs) and checks that the new
// one is the same node incarnation at a later placement.
func (tn *testNodes) waitRenewed(id int32, topic string, damaged uint64) uint64 {
	tn.t.Helper()
	var renewed uint64
	waitUntil(tn.t, fmt.Sprintf("node %d's damaged replica %#x renewed", id, damaged), func() bool {
		for _, tp := range tn.nodes[id].ctl.State().Topics {
			if tp.Name == topic {
				renewed = tn.nodes[id].localReplica(tp.Partitions[0])
				return renewed != damaged && tp.Partitions[0].ReassignmentId == 0
			}
		}
		return false
	})
	if meta.NodeReplicaID(renewed) != meta.NodeReplicaID(damaged) || meta.PlacementOf(renewed) <= meta.PlacementOf(damaged) {
		tn.t.Fatalf("node %d's replica %#x became %#x: want its incarnation at a new placement", id, damaged, renewed)
	}
	return renewed
}

// localReplicaOf is node id's replica of topic-0 in its applied state.
func (tn *testNodes) localReplicaOf(id int32, topic string) uint64 {
	tn.t.Helper()
	for _, tp := range tn.nodes[id].ctl.State().Topics {
		if tp.Name == topic {
			return tn.nodes[id].localReplica(tp.Partitions[0])
		}
	}
	tn.t.Fatalf("node %d: no topic %s", id, topic)
	return 0
}
