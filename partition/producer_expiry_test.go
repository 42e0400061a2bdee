package partition

import (
	"path"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestIdleProducerExpiresAtCheckpoint: a checkpoint forgets a producer idle
// for producer.id.expiration.ms and keeps an active one, the snapshot
// written agrees, and the forgotten producer can go on writing.
func TestIdleProducerExpiresAtCheckpoint(t *testing.T) {
	fsys := vfs.NewMem()
	p := open(t, fsys, func(c *Config) { c.ProducerIDExpirationMs = 60_000 })
	defer p.Close()
	clock := time.Now() // read and moved only under p.mu, like p.now's callers
	advance := func(d time.Duration) {
		p.mu.Lock()
		clock = clock.Add(d)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.now = func() time.Time { return clock }
	p.mu.Unlock()

	appendDurable(t, p, idempotent(t, 5, 0, 0, 1))
	advance(59 * time.Second)
	appendDurable(t, p, idempotent(t, 6, 0, 0, 1))
	advance(time.Second) // producer 5 idle exactly the period, 6 for a second
	p.mu.Lock()
	p.lastCheckpoint = time.Time{} // due, whatever the flusher checkpointed meanwhile
	p.mu.Unlock()
	p.maybeCheckpoint()

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
	if err != nil || next != 2 || len(snap.ids()) != 1 || snap.ids()[0] != 6 {
		t.Fatalf("snapshot at %d holds %v (err %v), want [6] at 2", next, snap.ids(), err)
	}
	if _, err := p.Append(idempotent(t, 5, 0, 1, 1)); err != nil {
		t.Fatalf("the expired producer's next batch: %v", err)
	}
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
