package cluster

import (
	"maps"
	"slices"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestClusterRenewsDamagedReplica: a follower stopped, its segment cut
// below the recovery point (damage recovery may not repair), refuses the
// damaged files when it starts again and asks for a new copy: the state
// replaces its replica by one at a new placement on the same node, which
// copies the partition from the leader, and the node serves every
// acknowledged record again, with nothing an operator did.
func TestClusterRenewsDamagedReplica(t *testing.T) {
	tn := startNodes(t, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("damaged", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	a := startAppender(tn, "damaged")
	waitUntil(t, "appends before the damage", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 40 })
	lead := tn.leader("damaged", 0)
	var victim int32
	for id := range tn.nodes {
		if id != lead {
			victim = id
			break
		}
	}
	mpOf := func(c *Cluster) *metav1.Partition {
		for _, tp := range c.ctl.State().Topics {
			if tp.Name == "damaged" {
				return tp.Partitions[0]
			}
		}
		t.Fatal("no topic damaged in the state")
		return nil
	}
	before := slices.IndexFunc(mpOf(tn.nodes[lead]).Replicas, func(r uint64) bool { return meta.NodeOf(r) == victim })
	damagedID := mpOf(tn.nodes[lead]).Replicas[before]
	q, err := tn.nodes[victim].Partition("damaged", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the victim to hold some records", func() bool { return q.HighWatermark() >= 20 })
	tn.stop(victim)

	const segment = "/data/damaged-0/00000000000000000000.log"
	data, err := vfs.ReadFile(tn.fs[victim], segment)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tn.fs[victim].Create(segment)
	if err == nil {
		_, err = f.Write(data[:len(data)/2])
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	tn.restart(victim)

	var renewed uint64
	waitUntil(t, "the damaged replica renewed on its node", func() bool {
		mp := mpOf(tn.nodes[victim])
		at := slices.IndexFunc(mp.Replicas, func(r uint64) bool { return meta.NodeOf(r) == victim })
		if at < 0 || mp.ReassignmentId != 0 || mp.Replicas[at] == damagedID {
			return false
		}
		renewed = mp.Replicas[at]
		return true
	})
	if meta.NodeReplicaID(renewed) != meta.NodeReplicaID(damagedID) || meta.PlacementOf(renewed) <= meta.PlacementOf(damagedID) {
		t.Fatalf("node %d's replica %#x became %#x: want its incarnation at a new placement", victim, damagedID, renewed)
	}
	waitUntil(t, "appends after the renewal", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 80 })
	acked := a.finish(t)

	tn.checkHolds("damaged", tn.leader("damaged", 0), slices.Collect(maps.Keys(tn.nodes)), acked)
	t.Logf("node %d's damaged replica %#x renewed as %#x; %d acknowledged appends", victim, damagedID, renewed, len(acked))
}
