package txn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// markerLog records the markers a coordinator writes, or refuses them all.
type markerLog struct {
	mu      sync.Mutex
	refuse  bool
	written []TopicPartition
	commits []bool
}

func (l *markerLog) WriteMarker(_ context.Context, tp TopicPartition, _ int64, _ int16, commit bool, _ int32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refuse {
		return errors.New("refused by the test")
	}
	l.written, l.commits = append(l.written, tp), append(l.commits, commit)
	return nil
}

func (l *markerLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.written)
}

// openCoordinator opens a single-node cluster on fsys and a coordinator
// over it with three __transaction_state partitions.
func openCoordinator(t *testing.T, fsys vfs.FS, markers MarkerWriter) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	return openCoordinatorWith(t, fsys, markers, func(*Config) {})
}

// openCoordinatorWith is openCoordinator with edit applied to the config.
func openCoordinatorWith(t *testing.T, fsys vfs.FS, markers MarkerWriter, edit func(*Config)) (*cluster.Cluster, *Coordinator) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := env.Real()
	e.FS, e.Logger = fsys, logger
	cl, err := cluster.Open(e, cluster.DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.StateTopicPartitions, cfg.MarkerRetryInterval = 3, 10*time.Millisecond
	edit(&cfg)
	co, err := Open(cl, cfg, markers, logger)
	if err != nil {
		t.Fatal(err)
	}
	return cl, co
}

// beginTxn starts a transaction of a new producer of id on tp.
func beginTxn(t *testing.T, co *Coordinator, id string, timeoutMs int32, tp TopicPartition) (int64, int16) {
	t.Helper()
	if _, err := co.Locate(id); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := co.InitProducerID(id, timeoutMs, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.AddPartitions(id, pid, epoch, []TopicPartition{tp}); err != nil {
		t.Fatal(err)
	}
	return pid, epoch
}

// waitState waits until id reaches state on co.
func waitState(t *testing.T, co *Coordinator, id string, state State) Metadata {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		md, err := co.Describe(id)
		if err == nil && md.State == state {
			return md
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v: %+v %v", id, state, md, err)
		}
		time.Sleep(5 * time.Millisecond) // markers are written off the request
	}
}

// TestCoordinatorResumesEndingTransactionAfterRestart: a commit whose
// markers could not be written stays PrepareCommit, durable; after a
// restart the coordinator loads it from __transaction_state, writes its
// markers to every partition of the transaction and completes it. The
// producer id and epoch survive too: the next init bumps the epoch.
func TestCoordinatorResumesEndingTransactionAfterRestart(t *testing.T) {
	fsys := vfs.NewMem()
	refusing := &markerLog{refuse: true}
	cl, co := openCoordinator(t, fsys, refusing)
	if _, err := co.Locate("t"); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := co.InitProducerID("t", 60_000, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	tps := []TopicPartition{{"a", 0}, {"b", 2}}
	if err := co.AddPartitions("t", pid, epoch, tps); err != nil {
		t.Fatal(err)
	}
	if err := co.End("t", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	if md := waitState(t, co, "t", PrepareCommit); len(md.Partitions) != 2 {
		t.Fatalf("prepared: %+v", md)
	}
	if err := co.AddPartitions("t", pid, epoch, tps); !errors.Is(err, ErrConcurrentTransactions) {
		t.Fatalf("add while the markers are pending: %v", err)
	}
	_ = co.Close()
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}

	recording := &markerLog{}
	cl, co = openCoordinator(t, fsys, recording)
	defer cl.Close()
	defer co.Close()
	md := waitState(t, co, "t", CompleteCommit)
	if md.ProducerID != pid || md.ProducerEpoch != epoch || len(md.Partitions) != 0 {
		t.Fatalf("completed: %+v", md)
	}
	if n := recording.count(); n != 2 || !recording.commits[0] || !recording.commits[1] {
		t.Fatalf("markers after the restart: %v %v", recording.written, recording.commits)
	}
	if gotPid, gotEpoch, err := co.InitProducerID("t", 60_000, pid, epoch); err != nil || gotPid != pid || gotEpoch != epoch+1 {
		t.Fatalf("init after the restart: %d %d %v, want %d %d", gotPid, gotEpoch, err, pid, epoch+1)
	}
}

// TestCoordinatorTimesOutOngoingTransaction: an ongoing transaction past
// its timeout is aborted by the coordinator (markers, epoch bumped); the
// producer of the old epoch is fenced.
func TestCoordinatorTimesOutOngoingTransaction(t *testing.T) {
	markers := &markerLog{}
	cl, co := openCoordinatorWith(t, vfs.NewMem(), markers, func(cfg *Config) { cfg.AbortCheckInterval = 10 * time.Millisecond })
	defer cl.Close()
	defer co.Close()
	pid, epoch := beginTxn(t, co, "slow", 50, TopicPartition{"a", 1})
	md := waitState(t, co, "slow", CompleteAbort)
	if md.ProducerEpoch != epoch+1 || markers.count() != 1 || markers.commits[0] {
		t.Fatalf("after the timeout: %+v, markers %v %v", md, markers.written, markers.commits)
	}
	if err := co.End("slow", pid, epoch, true); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("commit of the timed-out producer: %v", err)
	}
}

// fencedMarkers refuses every marker as from an older coordinator, as a
// partition would after a WriteTxnMarkers naming a higher coordinator
// epoch, and counts the attempts.
type fencedMarkers struct {
	mu       sync.Mutex
	attempts int
}

func (f *fencedMarkers) WriteMarker(context.Context, TopicPartition, int64, int16, bool, int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	return fmt.Errorf("marker refused by the test: %w", ErrCoordinatorFenced)
}

func (f *fencedMarkers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// TestFencedInTheEpochItLeadsRetriesAfterAPause: markers refused as from an
// older coordinator while this one still leads its partition in the epoch
// it loaded are retried after MarkerRetryInterval, like any failed write;
// reloading at once instead would load the same epoch, write the markers
// again and be refused again, in a loop with no pause.
func TestFencedInTheEpochItLeadsRetriesAfterAPause(t *testing.T) {
	markers := &fencedMarkers{}
	cl, co := openCoordinatorWith(t, vfs.NewMem(), markers, func(cfg *Config) {
		cfg.MarkerRetryInterval, cfg.EndWaitMax = time.Hour, time.Millisecond
	})
	defer cl.Close()
	defer co.Close()
	pid, epoch := beginTxn(t, co, "f", 60_000, TopicPartition{"a", 0})
	if err := co.End("f", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a loop would write thousands of markers meanwhile
	if n := markers.count(); n != 1 {
		t.Fatalf("%d marker writes within the first retry interval, want 1", n)
	}
	if md, err := co.Describe("f"); err != nil || md.State != PrepareCommit {
		t.Fatalf("the transaction: %+v %v, want still PrepareCommit", md, err)
	}
}
