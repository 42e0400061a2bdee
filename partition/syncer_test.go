package partition

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
)

// openShared opens n partitions t-0 … t-(n-1) on fsys sharing syncer.
func openShared(t *testing.T, fsys vfs.FS, syncer *Syncer, n int) []*Partition {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Storage.SegmentBytes = 2000 // segments roll, so syncs span files and directories
	cfg.CheckpointIntervalMs = 1
	cfg.Syncer = syncer
	ps := make([]*Partition, n)
	for i := range ps {
		p, err := Open(testEnv(fsys), fmt.Sprintf("/data/t-%d", i), "t", int32(i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	return ps
}

func closeAll(ps []*Partition) {
	for _, p := range ps {
		_ = p.Close()
	}
}

// countingFS counts the syncs of .log files running at once and holds each
// until release is closed once the first hold syncs have started: the
// test sees the most a shared Syncer lets run together.
type countingFS struct {
	vfs.FS
	hold    int
	entered chan struct{} // one send per held sync
	release chan struct{}

	mu      sync.Mutex
	running int
	peak    int
	held    int
}

func (c *countingFS) Create(name string) (vfs.File, error) {
	f, err := c.FS.Create(name)
	return c.wrap(name, f, err)
}

func (c *countingFS) OpenAppend(name string) (vfs.File, error) {
	f, err := c.FS.OpenAppend(name)
	return c.wrap(name, f, err)
}

func (c *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &countingFile{File: f, fs: c}, nil
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (f *countingFile) Sync() error {
	c := f.fs
	c.mu.Lock()
	c.running++
	c.peak = max(c.peak, c.running)
	hold := c.held < c.hold
	if hold {
		c.held++
	}
	c.mu.Unlock()
	if hold {
		c.entered <- struct{}{}
		<-c.release
	}
	err := f.File.Sync()
	c.mu.Lock()
	c.running--
	c.mu.Unlock()
	return err
}

// TestSyncerBoundsConcurrentSyncs: twelve partitions with data pending at
// once sync through a Syncer of three workers, never more than three
// fdatasyncs at a time, and each acks=all waiter is answered. Without the
// Syncer each partition's flusher would sync its own file at once.
func TestSyncerBoundsConcurrentSyncs(t *testing.T) {
	const partitions, workers = 12, 3
	syncer, err := NewSyncer(env.Real().Clock, workers)
	if err != nil {
		t.Fatal(err)
	}
	defer syncer.Close()
	cfs := &countingFS{FS: vfs.NewMem(), entered: make(chan struct{}), release: make(chan struct{})}
	ps := openShared(t, cfs, syncer, partitions)
	defer closeAll(ps)

	cfs.mu.Lock()
	cfs.hold = workers // the syncs of the recovered logs at open are done
	cfs.mu.Unlock()
	results := make([]AppendResult, partitions)
	for i, p := range ps {
		if results[i], err = p.Append(produce(t, 2, fmt.Sprintf("p%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range workers {
		<-cfs.entered // every worker is inside a sync, the other nine partitions queued
	}
	close(cfs.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, p := range ps {
		if err := p.WaitDurable(ctx, results[i].LastOffset); err != nil {
			t.Fatalf("partition %d: %v", i, err)
		}
	}
	cfs.mu.Lock()
	peak := cfs.peak
	cfs.mu.Unlock()
	if peak != workers {
		t.Fatalf("at most %d syncs ran at once, want %d (the workers)", peak, workers)
	}
}

// TestSyncerFailedSyncFailsOnlyItsPartition: an fdatasync failing for one
// partition's file takes that partition offline (its waiter never
// acknowledged) while the others sharing the Syncer go on.
func TestSyncerFailedSyncFailsOnlyItsPartition(t *testing.T) {
	syncer, err := NewSyncer(env.Real().Clock, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer syncer.Close()
	efs := vfs.NewErrorFS(vfs.NewMem())
	ps := openShared(t, efs, syncer, 4)
	defer closeAll(ps)
	for _, p := range ps {
		appendDurable(t, p, produce(t, 1, "first")) // leader epochs recorded
	}
	efs.Inject(vfs.Rule{Op: vfs.OpSync, PathContains: "/t-2/", Err: syscall.EIO})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range 3 {
		for i, p := range ps {
			res, err := p.Append(produce(t, 1, fmt.Sprintf("r%d", round)))
			if i == 2 {
				if round == 0 && err == nil {
					err = p.WaitDurable(ctx, res.LastOffset)
				}
				if !errors.Is(err, ErrStorageFailed) {
					t.Fatalf("round %d: partition 2 after its failed sync: %v", round, err)
				}
				continue
			}
			if err == nil {
				err = p.WaitDurable(ctx, res.LastOffset)
			}
			if err != nil {
				t.Fatalf("round %d: partition %d beside a failed one: %v", round, i, err)
			}
		}
	}
	if hwm := ps[2].HighWatermark(); hwm != 1 {
		t.Fatalf("failed partition's high watermark %d, want 1", hwm)
	}
}

// TestSyncerClosedFirst: partitions still open when the Syncer closes sync
// on their own flushers; nothing waits for the stopped workers.
func TestSyncerClosedFirst(t *testing.T) {
	syncer, err := NewSyncer(env.Real().Clock, 1)
	if err != nil {
		t.Fatal(err)
	}
	ps := openShared(t, vfs.NewMem(), syncer, 2)
	defer closeAll(ps)
	appendDurable(t, ps[0], produce(t, 1, "before"))
	syncer.Close()
	for _, p := range ps {
		appendDurable(t, p, produce(t, 1, "after"))
	}
}

// TestSyncerPowerCut: 16 partitions share a Syncer of 4 workers, each fed
// by its own producer that pipelines two batches and waits for the second
// (acks=all). The power is cut before the b-th mutating call of the
// filesystem (write, sync, directory sync, rename, …), for every b until a
// run finishes uncut, so the cut lands at every sync boundary of a
// workload whose syncs overlap across partitions. After recovery every
// acknowledged batch is in its partition, byte for byte, and each log is
// contiguous.
func TestSyncerPowerCut(t *testing.T) {
	const partitions, rounds = 16, 6
	for budget := 1; ; budget++ {
		cut, err := syncerPowerCut(t, budget, partitions, rounds)
		if err != nil {
			t.Fatalf("power cut before call %d: %v", budget, err)
		}
		if !cut {
			t.Logf("power cuts survived: %d points", budget-1)
			return
		}
		if budget > 100_000 {
			t.Fatal("the workload never finished uncut")
		}
	}
}

// syncerPowerCut runs the workload once with the cut before the budget-th
// mutating call and checks the recovered partitions; false when the
// workload ended before the cut.
func syncerPowerCut(t *testing.T, budget, partitions, rounds int) (bool, error) {
	syncer, err := NewSyncer(env.Real().Clock, 4)
	if err != nil {
		return false, err
	}
	defer syncer.Close()
	pcfs := vfs.NewPowerCutFS(vfs.NewCrashFS(), 1<<30, vfs.CrashOptions{})
	ps := openShared(t, pcfs, syncer, partitions)
	pcfs.CutAfter(budget)
	acks := make([][]acked, partitions)
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks[i] = produceUntilCut(p, i, rounds)
		}()
	}
	wg.Wait()
	cut := pcfs.Cut()
	crashed := pcfs.Crash()
	closeAll(ps) // the old process is gone; its files are never looked at again
	cfg := DefaultConfig()
	for i := range ps {
		p, err := Open(testEnv(crashed), fmt.Sprintf("/data/t-%d", i), "t", int32(i), cfg)
		if err != nil {
			return cut, fmt.Errorf("recover partition %d: %w", i, err)
		}
		err = checkRecovered(p, acks[i])
		_ = p.Close()
		if err != nil {
			return cut, fmt.Errorf("partition %d: %w", i, err)
		}
	}
	return cut, nil
}

// produceUntilCut appends rounds pairs of batches to p, waiting for the
// second of each pair, and returns the acknowledged ones; it stops at the
// first error (the power cut).
func produceUntilCut(p *Partition, index, rounds int) []acked {
	var acks []acked
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range rounds {
		var pair []acked
		var last int64
		for k := range 2 {
			data := batch.Build([]batch.Record{{Value: []byte(fmt.Sprintf("p%d-r%d-%d", index, round, k))}}, batch.None)
			res, err := p.Append(data)
			if err != nil {
				return acks
			}
			pair = append(pair, acked{offset: res.BaseOffset, stored: data, pid: -1})
			last = res.LastOffset
		}
		if err := p.WaitDurable(ctx, last); err != nil {
			return acks
		}
		acks = append(acks, pair...)
	}
	return acks
}
