package partition

import (
	"path"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// openClocked opens a partition on a manual clock and reports each round of
// the flusher (whether it checkpointed) on the returned channel.
func openClocked(t *testing.T, fsys vfs.FS, edit func(*Config)) (*Partition, *env.ManualClock, <-chan bool) {
	t.Helper()
	clock := env.NewManualClock(time.Unix(1_700_000_000, 0))
	e := testEnv(fsys)
	e.Clock = clock
	p := openEnv(t, e, edit)
	flushed := make(chan bool, 1)
	p.afterFlush = func(checkpointed bool) { flushed <- checkpointed }
	return p, clock, flushed
}

// TestCheckpointFollowsTheClock: the flusher records a checkpoint (and a
// producer-state snapshot) after a sync once the checkpoint interval has
// passed on the partition's clock, and not before.
func TestCheckpointFollowsTheClock(t *testing.T) {
	fsys := vfs.NewMem()
	p, clock, flushed := openClocked(t, fsys, func(c *Config) { c.CheckpointIntervalMs = 10_000 })
	defer p.Close()
	steps := []struct {
		advance time.Duration
		want    bool
	}{
		{0, false},
		{9999 * time.Millisecond, false},
		{time.Millisecond, true}, // the interval since Open has passed
		{0, false},
		{9 * time.Second, false},
		{time.Second, true},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		appendDurable(t, p, idempotent(t, 1, 0, int32(i), 1))
		if got := <-flushed; got != s.want {
			t.Fatalf("step %d (+%v): checkpointed %v, want %v", i, s.advance, got, s.want)
		}
	}
	data, err := vfs.ReadFile(fsys, path.Join("/data/t-0", producerStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, next, err := unmarshalProducerState(data, 0); err != nil || next != int64(len(steps)) {
		t.Fatalf("snapshot at offset %d (err %v), want the last checkpoint's %d", next, err, len(steps))
	}
}

// TestIdleProducerExpiresAtCheckpoint: a checkpoint forgets a producer idle
// for producer.id.expiration.ms and keeps an active one, the snapshot
// written agrees, and the forgotten producer can go on writing.
func TestIdleProducerExpiresAtCheckpoint(t *testing.T) {
	fsys := vfs.NewMem()
	p, clock, flushed := openClocked(t, fsys, func(c *Config) {
		c.ProducerIDExpirationMs = 60_000
		c.CheckpointIntervalMs = 60_000
	})
	defer p.Close()

	appendDurable(t, p, idempotent(t, 5, 0, 0, 1))
	<-flushed
	clock.Advance(59 * time.Second)
	appendDurable(t, p, idempotent(t, 6, 0, 0, 1))
	<-flushed
	clock.Advance(time.Second) // producer 5 idle exactly the period, 6 for a second
	appendDurable(t, p, produce(t, 1, "v"))
	if !<-flushed {
		t.Fatal("no checkpoint once the interval passed")
	}

	p.mu.Lock()
	ids := p.producers.ids()
	p.mu.Unlock()
	if len(ids) != 1 || ids[0] != 6 {
		t.Fatalf("producers after the checkpoint %v, want [6]", ids)
	}
	data, err := vfs.ReadFile(fsys, path.Join("/data/t-0", producerStateFile))
	if err != nil {
		t.Fatal(err)
	}
	snap, next, err := unmarshalProducerState(data, 0)
	if err != nil || next != 3 || len(snap.ids()) != 1 || snap.ids()[0] != 6 {
		t.Fatalf("snapshot at %d holds %v (err %v), want [6] at 3", next, snap.ids(), err)
	}
	if _, err := p.Append(idempotent(t, 5, 0, 1, 1)); err != nil {
		t.Fatalf("the expired producer's next batch: %v", err)
	}
	<-flushed
}

// TestProducerSnapshotWrittenWithoutWriterLock: while the producer-state
// snapshot's fsync is pending, appends go on: only the copy of the state is
// taken under the writer lock.
func TestProducerSnapshotWrittenWithoutWriterLock(t *testing.T) {
	gate := newGateFS(vfs.NewMem(), producerStateFile)
	p := open(t, gate)
	defer p.Close()
	released := false
	defer func() {
		if !released {
			close(gate.release)
		}
	}()
	appendDurable(t, p, idempotent(t, 3, 0, 0, 1))
	gate.armed.Store(true)
	p.mu.Lock()
	p.lastCheckpoint = time.Time{} // the next flush records a checkpoint
	p.mu.Unlock()
	// Not waited for: the flusher may already be checkpointing after the
	// previous sync, held in the gated snapshot before it syncs this one.
	if _, err := p.Append(produce(t, 1, "v")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gate.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no producer-state snapshot started")
	}
	appended := make(chan error, 1)
	go func() {
		_, err := p.Append(idempotent(t, 3, 0, 1, 1))
		appended <- err
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an append waits for the producer-state snapshot's fsync")
	}
	close(gate.release)
	released = true
}

// TestProducerSnapshotsOnlyMoveForward: a snapshot copy older than one
// already written (as when the background checkpoint loses a race with the
// snapshot taken before retention) is not written over it.
func TestProducerSnapshotsOnlyMoveForward(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys)
	defer p.Close()
	appendDurable(t, p, idempotent(t, 1, 0, 0, 1))
	p.mu.Lock()
	older := p.copyProducers()
	p.mu.Unlock()
	appendDurable(t, p, idempotent(t, 2, 0, 0, 1))
	p.mu.Lock()
	newer := p.copyProducers()
	p.mu.Unlock()
	for _, snap := range []producerSnapshotCopy{newer, older} {
		if err := p.writeProducers(snap); err != nil {
			t.Fatal(err)
		}
	}
	data, err := vfs.ReadFile(fsys, path.Join("/data/t-0", producerStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, next, err := unmarshalProducerState(data, 0); err != nil || next != 2 {
		t.Fatalf("snapshot at offset %d (err %v), want the newer one at 2", next, err)
	}
}
