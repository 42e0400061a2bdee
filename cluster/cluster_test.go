package cluster

import (
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openCluster(t *testing.T, fsys vfs.FS) *Cluster {
	t.Helper()
	c, err := Open(fsys, DefaultConfig("/data"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDefaultsAgree: every documented default, set explicitly, gives the same
// partition config as no override at all.
func TestDefaultsAgree(t *testing.T) {
	all := map[string]string{}
	for _, s := range topicConfigSpecs {
		all[s.name] = s.def
	}
	explicit, err := partitionConfig(all)
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := partitionConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(explicit, implicit) {
		t.Fatalf("defaults disagree:\nexplicit %+v\nimplicit %+v", explicit, implicit)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		configs map[string]string
		ok      bool
	}{
		{map[string]string{"cleanup.policy": "compact"}, true},
		{map[string]string{"cleanup.policy": "compact,delete"}, true},
		{map[string]string{"cleanup.policy": "shred"}, false},
		{map[string]string{"retention.ms": "-1"}, true},
		{map[string]string{"retention.ms": "-2"}, false},
		{map[string]string{"retention.ms": "soon"}, false},
		{map[string]string{"message.timestamp.type": "LogAppendTime"}, true},
		{map[string]string{"compression.type": "gzip"}, false},
		{map[string]string{"no.such.key": "1"}, false},
		{map[string]string{"max.message.bytes": "10"}, false},
	}
	for _, c := range cases {
		_, err := partitionConfig(c.configs)
		if (err == nil) != c.ok {
			t.Errorf("%v: err %v, want ok=%v", c.configs, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%v: error %v does not wrap ErrInvalidConfig", c.configs, err)
		}
	}
}

func TestTopicNames(t *testing.T) {
	for _, ok := range []string{"orders", "a.b_c-D9", strings.Repeat("x", 249)} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", strings.Repeat("x", 250)} {
		if err := ValidateTopicName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// TestTopicsSurviveRestart: topics, partition counts and configs are durable;
// a deleted topic stays deleted and its directories are gone.
func TestTopicsSurviveRestart(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	if _, err := c.CreateTopic("orders", 3, map[string]string{"retention.ms": "1000"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic("orders", 1, nil, false); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := c.CreateTopic("dry", 1, nil, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Topic("dry"); ok {
		t.Fatal("validate-only created the topic")
	}
	if _, err := c.CreateTopic("gone", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePartitions("orders", 5, false); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePartitions("orders", 2, false); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("shrinking partitions: %v", err)
	}
	if err := c.SetConfigs("orders", map[string]string{"cleanup.policy": "compact"}, false); err != nil {
		t.Fatal(err)
	}
	id := c.ID()
	orders, _ := c.Topic("orders")
	pid1, _ := c.NextProducerID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openCluster(t, fsys)
	defer c.Close()
	if c.ID() != id {
		t.Fatalf("cluster id changed: %s -> %s", id, c.ID())
	}
	got, ok := c.Topic("orders")
	if !ok || len(got.Partitions) != 5 || got.ID != orders.ID || got.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("orders after restart: %+v", got)
	}
	if _, ok := c.Topic("gone"); ok {
		t.Fatal("deleted topic came back")
	}
	names, _ := fsys.List("/data")
	for _, n := range names {
		if strings.HasPrefix(n, "gone-") {
			t.Fatalf("deleted topic's directory %s remains", n)
		}
	}
	if pid2, _ := c.NextProducerID(); pid2 <= pid1 {
		t.Fatalf("producer id reused after restart: %d then %d", pid1, pid2)
	}
	if _, err := c.Partition("orders", 4); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Partition("orders", 5); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("partition 5: %v", err)
	}
}

// TestOrphanDirectoriesRemoved: a crash between removing a topic from
// topics.json and deleting its directories leaves directories that start-up removes.
func TestOrphanDirectoriesRemoved(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkdirAll("/data/stale-0"); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if _, err := fsys.Stat("/data/stale-0"); err == nil {
		t.Fatal("orphan directory kept")
	}
}
