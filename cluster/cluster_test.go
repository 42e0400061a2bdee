package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testEnv is the real environment on fsys, logging nothing.
func testEnv(fsys vfs.FS) env.Env {
	e := env.Real()
	e.FS, e.Logger = fsys, quiet
	return e
}

// TestIDsComeFromTheEnv: the cluster id and topic ids are drawn from the
// environment's randomness, so one seed gives the same ids on every run,
// and another seed others.
func TestIDsComeFromTheEnv(t *testing.T) {
	ids := func(seed uint64) (string, [16]byte) {
		e := testEnv(vfs.NewMem())
		e.Rand = env.NewSeededRand(seed)
		c, err := Open(e, DefaultConfig("/data"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		topic, err := c.CreateTopic("t", 1, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID(), topic.ID
	}
	cluster1, topic1 := ids(1)
	cluster2, topic2 := ids(1)
	if cluster1 != cluster2 || topic1 != topic2 {
		t.Fatalf("seed 1 gave cluster %s topic %x, then cluster %s topic %x", cluster1, topic1, cluster2, topic2)
	}
	if other, _ := ids(2); other == cluster1 {
		t.Fatalf("seeds 1 and 2 both gave cluster id %s", other)
	}
}

func openCluster(t *testing.T, fsys vfs.FS) *Cluster {
	t.Helper()
	c, err := Open(testEnv(fsys), DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	return c
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

// TestMarkedDirectoriesRemoved: start-up removes a directory marked for
// deletion that no topic owns (a deletion interrupted after topics.json was
// written).
func TestMarkedDirectoriesRemoved(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	marked := "/data/" + deletionDirName("stale", 0, [16]byte{1})
	if err := fsys.MkdirAll(marked); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if _, err := fsys.Stat(marked); err == nil {
		t.Fatal("marked directory kept")
	}
}

// TestSecondOpenRefused: a data directory has one owner at a time; the
// second is refused with the holder's pid, and the lock goes with Close.
func TestSecondOpenRefused(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	_, err := Open(testEnv(fsys), DefaultConfig("/data"))
	if !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("second open: %q does not name the holder (%s)", err, want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	openCluster(t, fsys).Close()
}

// listData returns the entries of a directory, failing the test on error.
func listData(t *testing.T, fsys vfs.FS, dir string) []string {
	t.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestUnknownPartitionsKept: without its metadata group (node.json and
// meta/ lost, or a wrong data directory) the partition directories are not deleted: start-up refuses,
// names them and says what to do, and moving them away lets it start.
func TestUnknownPartitionsKept(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	if _, err := c.CreateTopic("orders", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Partition("orders", 1)
	if _, err := p.Append(testBatch(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	segments := listData(t, fsys, "/data/orders-1")
	if err := fsys.RemoveAll("/data/meta"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove("/data/node.json"); err != nil {
		t.Fatal(err)
	}

	_, err := Open(testEnv(fsys), DefaultConfig("/data"))
	if !errors.Is(err, ErrUnknownPartitions) {
		t.Fatalf("open without its metadata: %v, want ErrUnknownPartitions", err)
	}
	if _, statErr := fsys.Stat("/data/node.json"); statErr == nil {
		t.Fatal("a refused start bootstrapped a new metadata group")
	}
	for _, want := range []string{"orders-0", "orders-1", "move"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got := listData(t, fsys, "/data/orders-1"); !reflect.DeepEqual(got, segments) {
		t.Fatalf("partition files after a refused start: %v, were %v", got, segments)
	}

	// What the message tells an operator to do.
	if err := fsys.MkdirAll("/aside"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"orders-0", "orders-1"} {
		if err := fsys.Rename("/data/"+dir, "/aside/"+dir); err != nil {
			t.Fatal(err)
		}
	}
	openCluster(t, fsys).Close()
	if got := listData(t, fsys, "/aside/orders-1"); !reflect.DeepEqual(got, segments) {
		t.Fatalf("moved partition files: %v, were %v", got, segments)
	}
}

// TestInterruptedDeletionFinishes: a deletion that stopped after marking
// some of a topic's directories (before its deletion was proposed) is
// finished at the next start, which proposes it; marked directories are the
// only ones removed.
func TestInterruptedDeletionFinishes(t *testing.T) {
	errFS := vfs.NewErrorFS(vfs.NewMem())
	c := openCluster(t, errFS)
	for _, name := range []string{"gone", "kept"} {
		if _, err := c.CreateTopic(name, 2, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	remove := errFS.Inject(vfs.Rule{Op: vfs.OpRename, PathContains: "gone-1", Err: errors.New("EIO")})
	if err := c.DeleteTopic("gone"); err == nil {
		t.Fatal("delete with a failing rename succeeded")
	}
	remove()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openCluster(t, errFS)
	defer c.Close()
	if _, ok := c.Topic("gone"); ok {
		t.Fatal("a topic whose deletion started came back")
	}
	for _, n := range listData(t, errFS, "/data") {
		if strings.HasPrefix(n, "gone-") {
			t.Errorf("directory %s of the deleted topic remains", n)
		}
	}
	if _, err := c.Partition("kept", 1); err != nil {
		t.Fatal(err)
	}
	for _, topic := range c.ctl.State().Topics {
		if topic.Name == "gone" {
			t.Fatalf("the metadata group still holds the deleted topic: %v", topic)
		}
	}
}

// TestCreateRefusesExistingDirectory: a topic is never created over a
// directory that is already there (placed while the server ran): it would
// adopt unknown data, and undoing a failed create would delete it.
func TestCreateRefusesExistingDirectory(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	defer c.Close()
	if err := fsys.MkdirAll("/data/new-1"); err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fsys, "/data/new-1/keep", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic("new", 2, nil, false); !errors.Is(err, ErrTopicExists) || !strings.Contains(err.Error(), "new-1") {
		t.Fatalf("create over an existing directory: %v", err)
	}
	if _, err := fsys.Stat("/data/new-1/keep"); err != nil {
		t.Fatalf("the existing directory's file: %v", err)
	}
	if _, err := fsys.Stat("/data/new-0"); err == nil {
		t.Fatal("the refused create left new-0 behind")
	}
	if _, err := c.CreateTopic("grow", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkdirAll("/data/grow-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePartitions("grow", 2, false); !errors.Is(err, ErrInvalidPartitions) || !strings.Contains(err.Error(), "grow-1") {
		t.Fatalf("create partitions over an existing directory: %v", err)
	}
}

// TestFailedOpenReleasesEverything: when Open fails after the metadata
// group and the partitions could have opened (here on a partition
// directory no topic owns) it leaves no goroutine running and releases the
// data directory, so a corrected start can follow in the same process.
func TestFailedOpenReleasesEverything(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	for _, name := range []string{"a", "b"} {
		if _, err := c.CreateTopic(name, 1, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkdirAll("/data/stray-0"); err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	if _, err := Open(testEnv(fsys), DefaultConfig("/data")); !errors.Is(err, ErrUnknownPartitions) {
		t.Fatalf("open beside a stray partition directory: %v", err)
	}
	// The scheduler, the controller and open partitions run goroutines until
	// closed; goroutines that other tests' clean-up ends may still be
	// finishing, so wait a bounded time.
	for attempt := 0; runtime.NumGoroutine() > goroutines; attempt++ {
		if attempt == 100 {
			t.Fatalf("a failed open left goroutines running: %d, were %d", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := fsys.RemoveAll("/data/stray-0"); err != nil {
		t.Fatal(err)
	}
	openCluster(t, fsys).Close()
}

// testBatch is one record as a producer sends it.
func testBatch(t *testing.T) []byte {
	t.Helper()
	return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("kept")}}, batch.None)
}

// TestCleanerRunsOnTheClusterClock: the cleaner's pass runs when the
// cluster's clock reaches the clean interval, not before, and it re-arms for
// the next interval once the pass is done.
func TestCleanerRunsOnTheClusterClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Unix(1_700_000_000, 0)
	clock := env.NewManualClock(start)
	e := testEnv(vfs.NewMem())
	e.Clock = clock
	cfg := DefaultConfig("/data")
	cfg.CleanIntervalMs = 30_000
	c, err := Open(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Every batch its own segment, and retention by size drops every sealed one.
	if _, err := c.CreateTopic("t", 1, map[string]string{"segment.bytes": "14", "retention.bytes": "1"}, false); err != nil {
		t.Fatal(err)
	}
	p, err := c.Partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		res, err := p.Append(testBatch(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitDurable(ctx, res.LastOffset); err != nil {
			t.Fatal(err)
		}
	}
	if err := clock.WaitArmed(ctx, start.Add(30*time.Second)); err != nil {
		t.Fatalf("the cleaner armed no timer: %v", err)
	}
	clock.Advance(29 * time.Second)
	if got := p.LogStartOffset(); got != 0 {
		t.Fatalf("log start %d before the clean interval passed, want 0", got)
	}
	clock.Advance(time.Second)
	if err := clock.WaitArmed(ctx, start.Add(60*time.Second)); err != nil {
		t.Fatalf("the cleaner did not re-arm after its pass: %v", err)
	}
	if got := p.LogStartOffset(); got != 2 {
		t.Fatalf("log start %d after the pass, want 2 (the active segment stays)", got)
	}
}
