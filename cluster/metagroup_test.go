package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/storage/vfs"
)

// copyIn copies the directory tree at dir on disk to to on fsys.
func copyIn(t *testing.T, dir string, fsys vfs.FS, to string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkdirAll(to); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		from, dst := filepath.Join(dir, e.Name()), to+"/"+e.Name()
		if e.IsDir() {
			copyIn(t, from, fsys, dst)
			continue
		}
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(fsys, dst, data); err != nil {
			t.Fatal(err)
		}
	}
}

// legacyFixture is testdata/legacy-v1: a data directory written by the
// single-node code before the metadata group (see testdata/README.md).
var legacyFixture = struct {
	clusterID      string
	nextProducerID int64
	topics         map[string]struct {
		id         string
		partitions int
		configs    map[string]string
	}
}{
	clusterID:      "pIyiDH046Rf-IYWtndct3A",
	nextProducerID: 1000,
	topics: map[string]struct {
		id         string
		partitions int
		configs    map[string]string
	}{
		"events": {"JFaXh6IA8LkrQaBf8vwTAA", 1, map[string]string{"cleanup.policy": "stream"}},
		"orders": {"wljSGNIkwWpCvfvkbPSdWw", 2, map[string]string{"retention.ms": "86400000"}},
		"plain":  {"41TsG5ECz42S0TL3GwTnuw", 1, nil},
	},
}

func encodeTopicID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// checkLegacyTopics fails unless c holds the fixture's cluster id and
// topics (ids, partition counts, configs) and the record of orders-1.
func checkLegacyTopics(t *testing.T, c *Cluster) {
	t.Helper()
	if c.ID() != legacyFixture.clusterID {
		t.Fatalf("cluster id %q, the legacy directory's was %q", c.ID(), legacyFixture.clusterID)
	}
	if got := len(c.Topics()); got != len(legacyFixture.topics) {
		t.Fatalf("%d topics, want %d", got, len(legacyFixture.topics))
	}
	for name, want := range legacyFixture.topics {
		got, ok := c.Topic(name)
		if !ok {
			t.Fatalf("topic %s lost", name)
		}
		if encodeTopicID(got.ID) != want.id || len(got.Partitions) != want.partitions || len(got.Configs) != len(want.configs) {
			t.Fatalf("topic %s: id %s, %d partitions, configs %v; want %+v", name, encodeTopicID(got.ID), len(got.Partitions), got.Configs, want)
		}
		for k, v := range want.configs {
			if got.Configs[k] != v {
				t.Fatalf("topic %s: %s=%q, want %q", name, k, got.Configs[k], v)
			}
		}
	}
	p, err := c.Partition("orders", 1)
	if err != nil {
		t.Fatal(err)
	}
	if end := p.LogEndOffset(); end != 1 {
		t.Fatalf("orders-1 ends at %d, the legacy partition held 1 record", end)
	}
}

// TestLegacyDirectoryMigrates: a data directory written before the metadata
// group opens with every topic (id, partitions, configs, data) and its
// cluster id; producer ids continue after the block cluster.json reserved;
// cluster.json and topics.json are renamed to *.migrated, and a restart
// keeps it all.
func TestLegacyDirectoryMigrates(t *testing.T) {
	fsys := vfs.NewMem()
	copyIn(t, "testdata/legacy-v1", fsys, "/data")
	c := openCluster(t, fsys)
	checkLegacyTopics(t, c)
	pid, err := c.NextProducerID()
	if err != nil {
		t.Fatal(err)
	}
	if pid < legacyFixture.nextProducerID {
		t.Fatalf("producer id %d, the legacy node had reserved up to %d", pid, legacyFixture.nextProducerID)
	}
	for _, name := range []string{controller.LegacyClusterFile, controller.LegacyTopicsFile} {
		if _, err := fsys.Stat("/data/" + name); err == nil {
			t.Fatalf("%s still in place", name)
		}
		if _, err := fsys.Stat("/data/" + name + migratedSuffix); err != nil {
			t.Fatalf("%s not kept as %s: %v", name, name+migratedSuffix, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openCluster(t, fsys)
	defer c.Close()
	checkLegacyTopics(t, c)
	if again, err := c.NextProducerID(); err != nil || again <= pid {
		t.Fatalf("producer id %d after a restart, %d before (%v)", again, pid, err)
	}
}

// TestLegacyMigrationInterrupted: a start that fails after the metadata
// group took the legacy files (here: renaming them) leaves them in place;
// the next start ignores them, keeps the migrated state and renames them.
func TestLegacyMigrationInterrupted(t *testing.T) {
	errFS := vfs.NewErrorFS(vfs.NewMem())
	copyIn(t, "testdata/legacy-v1", errFS, "/data")
	remove := errFS.Inject(vfs.Rule{Op: vfs.OpRename, PathContains: controller.LegacyClusterFile, Err: errors.New("EIO")})
	if _, err := Open(testEnv(errFS), DefaultConfig("/data")); err == nil {
		t.Fatal("open with a failing rename succeeded")
	}
	remove()
	if _, err := errFS.Stat("/data/" + controller.LegacyClusterFile); err != nil {
		t.Fatalf("cluster.json after the failed start: %v", err)
	}
	// A changed cluster.json must not matter any more: node.json says the
	// metadata group holds the directory's state.
	if err := vfs.WriteFileAtomic(errFS, "/data/"+controller.LegacyClusterFile, []byte(`{"version":1,"cluster_id":"other","next_producer_id":0}`)); err != nil {
		t.Fatal(err)
	}
	c := openCluster(t, errFS)
	defer c.Close()
	checkLegacyTopics(t, c)
	if _, err := errFS.Stat("/data/" + controller.LegacyClusterFile); err == nil {
		t.Fatal("cluster.json still in place")
	}
}

// TestCrashBetweenApplyAndDirectories: the metadata group applied a
// creation whose partition directory was never made, and a deletion whose
// marked directories were never removed, then the node lost power. The
// next start opens the created topic's partition and removes the deleted
// topic's directories; the durable data of the others is kept.
func TestCrashBetweenApplyAndDirectories(t *testing.T) {
	crashFS := vfs.NewCrashFS()
	errFS := vfs.NewErrorFS(crashFS)
	c := openCluster(t, errFS)
	defer c.Close()
	if _, err := c.CreateTopic("kept", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Partition("kept", 0)
	res, err := p.Append(testBatch(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic("gone", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	errFS.Inject(vfs.Rule{Op: vfs.OpMkdirAll, PathContains: "fresh-0", Err: errors.New("EIO")})
	if _, err := c.CreateTopic("fresh", 1, nil, false); err == nil || !strings.Contains(err.Error(), "the topic is created") {
		t.Fatalf("create with a failing mkdir: %v", err)
	}
	errFS.Inject(vfs.Rule{Op: vfs.OpRemove, PathContains: "gone-", Err: errors.New("EIO")})
	if err := c.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}

	after := crashFS.Crash(vfs.CrashOptions{})
	c2 := openCluster(t, after)
	defer c2.Close()
	if _, err := c2.Partition("fresh", 0); err != nil {
		t.Fatalf("the created topic's partition after the crash: %v (state %v)", err, c2.ctl.State())
	}
	if _, ok := c2.Topic("gone"); ok {
		t.Fatal("the deleted topic came back")
	}
	for _, n := range listData(t, after, "/data") {
		if strings.HasPrefix(n, "gone-") {
			t.Errorf("directory %s of the deleted topic remains", n)
		}
	}
	kept, err := c2.Partition("kept", 0)
	if err != nil {
		t.Fatal(err)
	}
	if end := kept.LogEndOffset(); end != 1 {
		t.Fatalf("kept ends at %d after the crash, want its durable record", end)
	}
}

// TestRecreateDeletedTopic: a topic deleted and created again under its
// name is a new topic (new id, the new partition count, no old data),
// before and after a restart.
func TestRecreateDeletedTopic(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	old, err := c.CreateTopic("t", 2, map[string]string{"retention.ms": "1000"}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Partition("t", 0)
	if _, err := p.Append(testBatch(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic("t"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("deleting it again: %v", err)
	}
	check := func(c *Cluster) {
		t.Helper()
		got, ok := c.Topic("t")
		if !ok || got.ID == old.ID || len(got.Partitions) != 1 || len(got.Configs) != 0 {
			t.Fatalf("re-created topic %+v, the deleted one had id %x", got, old.ID)
		}
		p, err := c.Partition("t", 0)
		if err != nil {
			t.Fatal(err)
		}
		if end := p.LogEndOffset(); end != 0 {
			t.Fatalf("the re-created partition ends at %d: it holds the deleted topic's data", end)
		}
		if _, err := fsys.Stat("/data/t-1"); err == nil {
			t.Fatal("the deleted topic's second partition directory remains")
		}
	}
	if _, err := c.CreateTopic("t", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	check(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	check(c)
}

// TestStaleReconcileChangesNothing: a reconcile holding a state read before
// a topic was created must neither drop that topic (with its acknowledged
// records) nor, after a deletion, reopen the deleted one.
func TestStaleReconcileChangesNothing(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	defer c.Close()
	before := c.ctl.State()
	if _, err := c.CreateTopic("t", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Partition("t", 0)
	if _, err := p.Append(testBatch(t)); err != nil {
		t.Fatal(err)
	}
	stale := func(st *metav1.State) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.reconcileTo(st); err != nil {
			t.Fatal(err)
		}
	}
	stale(before)
	got, err := c.Partition("t", 0)
	if err != nil || got != p || p.LogEndOffset() != 1 {
		t.Fatalf("after a stale reconcile: same partition %t, log end %d, err %v", got == p, p.LogEndOffset(), err)
	}
	if _, err := fsys.Stat("/data/t-0"); err != nil {
		t.Fatalf("after a stale reconcile: %v", err)
	}
	withTopic := c.ctl.State()
	if err := c.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	stale(withTopic)
	if _, ok := c.Topic("t"); ok {
		t.Fatal("a stale reconcile reopened the deleted topic")
	}
	if _, err := fsys.Stat("/data/t-0"); err == nil {
		t.Fatal("a stale reconcile recreated the deleted topic's directory")
	}
}

// TestRefusalsKeepTheirErrors: the metadata group's refusals come back as
// the errors the front ends map to Kafka error codes, message kept.
func TestRefusalsKeepTheirErrors(t *testing.T) {
	for code, want := range map[metav1.ErrorCode]error{
		metav1.ErrorCode_ERROR_CODE_TOPIC_EXISTS:       ErrTopicExists,
		metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC:      ErrUnknownTopic,
		metav1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS: ErrInvalidPartitions,
		metav1.ErrorCode_ERROR_CODE_INVALID_CONFIG:     ErrInvalidConfig,
		metav1.ErrorCode_ERROR_CODE_INVALID_TOPIC:      ErrInvalidTopic,
	} {
		err := clusterError(meta.ResultError(&metav1.Result{Code: code, Message: "topic t: why"}))
		if !errors.Is(err, want) || !strings.HasSuffix(err.Error(), "topic t: why") {
			t.Errorf("refusal %s: %v, want %v", code, err, want)
		}
	}
}
