package controller

import (
	"errors"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

// node.json, once written for a new node, binds the directory to that node
// and cluster: a restart with another node id or cluster is refused.
func TestIdentityBindsTheDirectory(t *testing.T) {
	fs := vfs.NewMem()
	id, err := OpenIdentity(fs, "/d", 2, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !id.New || id.Incarnation != 1 || id.ReplicaID() != 2<<20|1 {
		t.Fatalf("new identity %+v, replica %x", id, id.ReplicaID())
	}
	if _, err := fs.Stat("/d/node.json"); err == nil {
		t.Fatal("node.json written before the meta log was bootstrapped")
	}
	if err := writeIdentity(fs, "/d", id); err != nil { // as Open does
		t.Fatal(err)
	}
	again, err := OpenIdentity(fs, "/d", 2, "c1")
	if err != nil || again.New || again.ClusterID != "c1" {
		t.Fatalf("reopen: %+v, %v", again, err)
	}
	if _, err := OpenIdentity(fs, "/d", 2, ""); err != nil {
		t.Fatalf("reopen without a cluster id to compare: %v", err)
	}
	for _, c := range []struct {
		node    int32
		cluster string
	}{{3, "c1"}, {2, "c2"}} {
		if _, err := OpenIdentity(fs, "/d", c.node, c.cluster); !errors.Is(err, ErrIdentityMismatch) {
			t.Errorf("node %d of %q on node 2's directory of c1: %v, want ErrIdentityMismatch", c.node, c.cluster, err)
		}
	}
	if _, err := OpenIdentity(fs, "/empty", 1, ""); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("new node without a cluster id: %v, want ErrNoIdentity", err)
	}
}

func TestIdentityRefusesABadFile(t *testing.T) {
	for _, body := range []string{
		`{`,
		`{"version":2,"cluster_id":"c","node_id":1,"incarnation":1}`,
		`{"version":1,"cluster_id":"","node_id":1,"incarnation":1}`,
		`{"version":1,"cluster_id":"c","node_id":0,"incarnation":1}`,
		`{"version":1,"cluster_id":"c","node_id":1,"incarnation":0}`,
		`{"version":1,"cluster_id":"c","node_id":1,"incarnation":1048576}`,
	} {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/d"); err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(fs, "/d/node.json", []byte(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenIdentity(fs, "/d", 1, ""); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}

// Every node started with the same peer list derives the same cluster id,
// whatever the map's order; another list gives another id.
func TestClusterIDFromPeers(t *testing.T) {
	a := ClusterIDFromPeers(map[int32]string{1: "h1:1", 2: "h2:1", 3: "h3:1"})
	b := ClusterIDFromPeers(map[int32]string{3: "h3:1", 1: "h1:1", 2: "h2:1"})
	if a != b || len(a) != 22 {
		t.Fatalf("ids %q and %q", a, b)
	}
	for _, other := range []map[int32]string{
		{1: "h1:1", 2: "h2:1"},
		{1: "h1:1", 2: "h2:1", 3: "h3:2"},
		{1: "h1:1", 2: "h2:1", 4: "h3:1"},
	} {
		if ClusterIDFromPeers(other) == a {
			t.Errorf("%v gives the same id", other)
		}
	}
}
