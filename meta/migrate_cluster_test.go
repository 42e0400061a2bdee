package meta_test

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestMigrateWhatTheNodeWrote migrates the metadata files a single node
// writes today (not a copy of their format), so a change to them fails
// here: every topic comes through with its id, partitions and configs, and
// producer ids continue after those the node handed out.
func TestMigrateWhatTheNodeWrote(t *testing.T) {
	fsys := vfs.NewMem()
	e := env.Real()
	e.FS, e.Logger, e.Rand = fsys, slog.New(slog.NewTextHandler(io.Discard, nil)), env.NewSeededRand(7)
	c, err := cluster.Open(e, cluster.DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]*cluster.Topic{}
	for _, spec := range []struct {
		name       string
		partitions int32
		configs    map[string]string
	}{{"orders", 3, map[string]string{"retention.ms": "1000"}}, {"events", 1, map[string]string{"cleanup.policy": "stream"}}, {"gone", 1, nil}} {
		if created[spec.name], err = c.CreateTopic(spec.name, spec.partitions, spec.configs, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	handedOut, err := c.NextProducerID()
	if err != nil {
		t.Fatal(err)
	}
	clusterID := c.ID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	clusterJSON, err := vfs.ReadFile(fsys, "/data/cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	topicsJSON, err := vfs.ReadFile(fsys, "/data/topics.json")
	if err != nil {
		t.Fatal(err)
	}

	st, err := meta.MigrateLegacy(clusterJSON, topicsJSON, &metav1.Broker{NodeId: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.ClusterId != clusterID || st.NextProducerId <= handedOut {
		t.Fatalf("cluster id %q (node had %q), next producer id %d (node handed out %d)", st.ClusterId, clusterID, st.NextProducerId, handedOut)
	}
	var names []string
	for _, tp := range st.Topics {
		names = append(names, tp.Name)
		want := created[tp.Name]
		if !bytes.Equal(tp.Id, want.ID[:]) || len(tp.Partitions) != len(want.Partitions) || len(tp.Configs) != len(want.Configs) {
			t.Fatalf("topic %v, the node had %+v", tp, want)
		}
		for k, v := range want.Configs {
			if tp.Configs[k] != v {
				t.Fatalf("topic %s config %s=%q, the node had %q", tp.Name, k, tp.Configs[k], v)
			}
		}
	}
	if !slices.Equal(names, []string{"events", "orders"}) {
		t.Fatalf("topics %v", names)
	}
}
