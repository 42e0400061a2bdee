package groups

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

func openTest(t *testing.T, fsys vfs.FS) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	return openTestClock(t, fsys, env.RealClock(), func(*Config) {})
}

// reopenTest closes co and cl and opens them again over fsys, as a
// restart does; the test's cleanup closes the new ones.
func reopenTest(t *testing.T, fsys vfs.FS, cl *cluster.Cluster, co *Coordinator) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	_ = co.Close()
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	cl, co = openTest(t, fsys)
	t.Cleanup(func() { _ = co.Close(); _ = cl.Close() })
	return cl, co
}

// openTestClock opens a cluster and a coordinator on clock, with three
// offsets partitions and no initial rebalance delay unless edit sets one.
func openTestClock(t *testing.T, fsys vfs.FS, clock env.Clock, edit func(*Config)) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := env.Real()
	e.FS, e.Logger, e.Clock = fsys, logger, clock
	cl, err := cluster.Open(e, cluster.DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelayMs = 0
	cfg.OffsetsTopicPartitions = 3
	edit(&cfg)
	co, err := Open(cl, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	return cl, co
}

// TestDeadlinesFireOnClockAdvance: on a manual clock, a JoinGroup held by
// the initial rebalance delay returns when the clock passes the delay, and
// a member that stops heartbeating is expired when the clock passes its
// session timeout, with nothing but Advance: the driver's timer runs on the
// cluster's clock.
func TestDeadlinesFireOnClockAdvance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Unix(1_700_000_000, 0)
	clock := env.NewManualClock(start)
	cl, co := openTestClock(t, vfs.NewMem(), clock, func(cfg *Config) { cfg.InitialRebalanceDelayMs = 3000 })
	defer cl.Close()
	defer co.Close()
	commitForDeletion(ctx, t, co) // creates group g and its offsets partition
	offsets, err := cl.Partition(OffsetsTopic, partitionFor("g", 3))
	if err != nil {
		t.Fatal(err)
	}

	type joinAnswer struct {
		res JoinResult
		err error
	}
	joined := make(chan joinAnswer, 1)
	go func() {
		res, err := co.Join(ctx, JoinRequest{Group: "g", ClientID: "a", SessionTimeoutMs: 10_000,
			RebalanceTimeoutMs: 60_000, ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}})
		joined <- joinAnswer{res, err}
	}()
	if err := clock.WaitArmed(ctx, start.Add(3*time.Second)); err != nil {
		t.Fatalf("no timer armed for the initial rebalance delay: %v", err)
	}
	select {
	case a := <-joined:
		t.Fatalf("join answered before the delay passed: %+v", a)
	default:
	}
	clock.Advance(3 * time.Second)
	a := <-joined
	if a.err != nil || a.res.Err != nil || a.res.Generation != 1 {
		t.Fatalf("join after the delay: %+v", a)
	}
	synced, err := co.Sync(ctx, SyncRequest{Group: "g", MemberID: a.res.MemberID, Generation: 1,
		Assignments: map[string][]byte{a.res.MemberID: nil}})
	if err != nil || synced.Err != nil {
		t.Fatalf("sync: %+v %v", synced, err)
	}

	// The member now stays silent. Its expiry empties the group, which
	// writes the group's record: the offsets partition's high watermark
	// moving is the sign that the timer fired.
	hwm, changed := offsets.HighWatermark(), offsets.Changed()
	if err := clock.WaitArmed(ctx, start.Add(13*time.Second)); err != nil {
		t.Fatalf("no timer armed for the session: %v", err)
	}
	clock.Advance(10*time.Second + time.Millisecond)
	for offsets.HighWatermark() == hwm {
		select {
		case <-changed:
			changed = offsets.Changed()
		case <-ctx.Done():
			d, _ := co.Describe(context.Background(), "g")
			t.Fatalf("the session did not expire on Advance: %+v at %v", d, clock.Now().Sub(start))
		}
	}
	d, err := co.Describe(ctx, "g")
	if err != nil || d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("group after the session passed: %+v %v", d, err)
	}
}

// TestCommittedOffsetsSurviveRestart proves commits are replayed from
// __consumer_offsets on start, deletions included, with metadata and
// leader epoch intact.
func TestCommittedOffsetsSurviveRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys := vfs.NewMem()
	cl, co := openTest(t, fsys)
	simple := CommitRequest{Generation: -1}
	for _, group := range []string{"keep", "drop", "partly"} {
		simple.Group = group
		perPartition, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{
			{"t", 0}: {Offset: 5, LeaderEpoch: 2, Metadata: "m-" + group},
			{"t", 1}: {Offset: 7, LeaderEpoch: -1},
		})
		if err != nil || len(perPartition) != 0 {
			t.Fatalf("commit %s: %v %v", group, err, perPartition)
		}
	}
	simple.Group = "keep"
	if _, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 6, LeaderEpoch: 3, Metadata: "later"}}); err != nil {
		t.Fatal(err)
	}
	if err := co.DeleteGroup(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.DeleteOffsets(ctx, "partly", []TopicPartition{{"t", 1}}); err != nil {
		t.Fatal(err)
	}
	if tp, ok := cl.Topic(OffsetsTopic); !ok || tp.Configs["cleanup.policy"] != "compact" || len(tp.Partitions) != 3 {
		t.Fatalf("offsets topic not created as a 3-partition compacted topic: %+v", tp)
	}
	cl, co = reopenTest(t, fsys, cl, co)
	want := map[string]map[TopicPartition]OffsetCommit{
		"keep":   {{"t", 0}: {Offset: 6, LeaderEpoch: 3, Metadata: "later"}, {"t", 1}: {Offset: 7, LeaderEpoch: -1}},
		"drop":   {},
		"partly": {{"t", 0}: {Offset: 5, LeaderEpoch: 2, Metadata: "m-partly"}},
	}
	for group, offsets := range want {
		got, err := co.FetchOffsets(ctx, group, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(offsets) {
			t.Fatalf("%s: got %v, want %v", group, got, offsets)
		}
		for tp, oc := range offsets {
			g := got[tp]
			if g.Offset != oc.Offset || g.LeaderEpoch != oc.LeaderEpoch || g.Metadata != oc.Metadata || g.CommitTimestampMs == 0 {
				t.Fatalf("%s %v: got %+v, want %+v", group, tp, g, oc)
			}
		}
	}
	if list, _ := co.List(ctx); len(list) != 2 {
		t.Fatalf("restored groups %+v, want keep and partly", list)
	}
}

// TestJoinWaitsAndHonoursContext proves a JoinGroup call returns with the
// rebalance and that a caller that gives up is released.
func TestJoinWaitsAndHonoursContext(t *testing.T) {
	cl, co := openTest(t, vfs.NewMem())
	defer cl.Close()
	defer co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := JoinRequest{Group: "g", ClientID: "a", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 60000,
		ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}}
	first, err := co.Join(ctx, req)
	if err != nil || first.Err != nil || first.Generation != 1 {
		t.Fatalf("first join: %+v %v", first, err)
	}
	// A second member's join waits for the first to rejoin; give up early.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	req.ClientID = "b"
	if _, err := co.Join(short, req); err != context.DeadlineExceeded {
		t.Fatalf("waiting join returned %v, want deadline exceeded", err)
	}
	_ = co.Close()
	if _, err := co.Join(ctx, req); err != ErrClosed {
		t.Fatalf("join after close: %v, want ErrClosed", err)
	}
}

// TestPartitionForMatchesKafka checks the group-to-partition choice
// against Java's String.hashCode, which Kafka uses: "my-group" hashes to
// -1906497762, "console-consumer-1" to 35782224, "a" to 97.
func TestPartitionForMatchesKafka(t *testing.T) {
	for _, c := range []struct {
		group string
		want  int32
	}{
		{"", 0},
		{"a", 47},
		{"my-group", 12},
		{"console-consumer-1", 24},
	} {
		if got := partitionFor(c.group, 50); got != c.want {
			t.Errorf("partitionFor(%q, 50) = %d, want %d", c.group, got, c.want)
		}
	}
}

// deletion is one of the two requests that write tombstones.
type deletion struct {
	name string
	run  func(ctx context.Context, co *Coordinator) error
	// gone reports whether the deletion shows in the coordinator's state.
	gone func(ctx context.Context, t *testing.T, co *Coordinator) bool
}

var deletions = []deletion{
	{
		name: "DeleteGroup",
		run:  func(ctx context.Context, co *Coordinator) error { return co.DeleteGroup(ctx, "g") },
		gone: func(ctx context.Context, t *testing.T, co *Coordinator) bool {
			d, err := co.Describe(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			return d.State == "Dead"
		},
	},
	{
		name: "DeleteOffsets",
		run: func(ctx context.Context, co *Coordinator) error {
			results, err := co.DeleteOffsets(ctx, "g", []TopicPartition{{"t", 0}})
			if err != nil {
				return err
			}
			return results[TopicPartition{"t", 0}]
		},
		gone: func(ctx context.Context, t *testing.T, co *Coordinator) bool {
			offsets, err := co.FetchOffsets(ctx, "g", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, kept := offsets[TopicPartition{"t", 0}]
			return !kept
		},
	},
}

// commitForDeletion commits the offsets the deletions remove.
func commitForDeletion(ctx context.Context, t *testing.T, co *Coordinator) {
	t.Helper()
	req := CommitRequest{Group: "g", Generation: -1}
	if _, err := co.CommitOffsets(ctx, req, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 5, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
}

// TestDeletionReportsFailedAppend proves a deletion whose tombstones cannot be
// written is refused with the storage error and changes nothing.
func TestDeletionReportsFailedAppend(t *testing.T) {
	for _, d := range deletions {
		t.Run(d.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			efs := vfs.NewErrorFS(vfs.NewMem())
			cl, co := openTest(t, efs)
			defer cl.Close()
			defer co.Close()
			commitForDeletion(ctx, t, co)
			remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: OffsetsTopic, Err: syscall.ENOSPC})
			err := d.run(ctx, co)
			remove()
			if !errors.Is(err, partition.ErrDiskFull) {
				t.Fatalf("%s with a full disk = %v, want ErrDiskFull", d.name, err)
			}
			if d.gone(ctx, t, co) {
				t.Fatalf("%s took effect although its tombstones were not written", d.name)
			}
			if err := d.run(ctx, co); err != nil || !d.gone(ctx, t, co) {
				t.Fatalf("%s retried once the disk has room: %v", d.name, err)
			}
		})
	}
}

// TestDeletionReportsFailedSync proves a deletion is answered with the
// failure when its tombstones cannot be made durable.
func TestDeletionReportsFailedSync(t *testing.T) {
	for _, d := range deletions {
		t.Run(d.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			efs := vfs.NewErrorFS(vfs.NewMem())
			cl, co := openTest(t, efs)
			defer cl.Close()
			defer co.Close()
			commitForDeletion(ctx, t, co)
			efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: OffsetsTopic, Err: syscall.EIO})
			if err := d.run(ctx, co); !errors.Is(err, partition.ErrStorageFailed) {
				t.Fatalf("%s with a failing fsync = %v, want ErrStorageFailed", d.name, err)
			}
			// The log may or may not hold the tombstones now: a retry must
			// not be answered from memory as if the deletion were done.
			if err := d.run(ctx, co); !errors.Is(err, partition.ErrStorageFailed) {
				t.Fatalf("%s retried after a failed fsync = %v, want ErrStorageFailed", d.name, err)
			}
		})
	}
}

// TestDeletionWaitsForSync proves a deletion is not answered while its
// tombstones' fsync has not completed: with the fsync held, the caller
// gives up at its deadline instead of being told the deletion is done.
func TestDeletionWaitsForSync(t *testing.T) {
	for _, d := range deletions {
		t.Run(d.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			held, _, co := openHeldTest(t)
			commitForDeletion(ctx, t, co)
			held.hold.Store(true)
			short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancelShort()
			if err := d.run(short, co); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s with its fsync held = %v, want the caller's deadline", d.name, err)
			}
		})
	}
}

// heldSyncFS holds every file Sync of the offsets topic, once hold is set,
// until release is closed.
type heldSyncFS struct {
	vfs.FS
	hold     atomic.Bool
	release  chan struct{}
	released sync.Once
	// full fails writes to the offsets topic's files with ENOSPC.
	full atomic.Bool
}

// releaseSyncs lets held syncs go, once.
func (h *heldSyncFS) releaseSyncs() { h.released.Do(func() { close(h.release) }) }

// openHeldTest opens a cluster and coordinator over a heldSyncFS; at the
// test's end held syncs are let go before they close, which syncs.
func openHeldTest(t *testing.T) (*heldSyncFS, *cluster.Cluster, *Coordinator) {
	t.Helper()
	held := &heldSyncFS{FS: vfs.NewMem(), release: make(chan struct{})}
	cl, co := openTest(t, held)
	t.Cleanup(func() { cl.Close() })
	t.Cleanup(func() { co.Close() })
	t.Cleanup(held.releaseSyncs)
	return held, cl, co
}

type heldSyncFile struct {
	vfs.File
	fs   *heldSyncFS
	name string
}

func (h *heldSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &heldSyncFile{File: f, fs: h, name: name}, nil
}

func (h *heldSyncFS) Create(name string) (vfs.File, error) {
	f, err := h.FS.Create(name)
	return h.wrap(name, f, err)
}

func (h *heldSyncFS) OpenAppend(name string) (vfs.File, error) {
	f, err := h.FS.OpenAppend(name)
	return h.wrap(name, f, err)
}

func (f *heldSyncFile) Write(p []byte) (int, error) {
	if f.fs.full.Load() && strings.Contains(f.name, OffsetsTopic) {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (f *heldSyncFile) Sync() error {
	if f.fs.hold.Load() && strings.Contains(f.name, OffsetsTopic) {
		<-f.fs.release
	}
	return f.File.Sync()
}
