package partition

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage/vfs"
)

var (
	powercutSeeds = flag.Int("powercut.seeds", 100, "seeds TestPowerCut runs")
	powercutSeed  = flag.Int64("powercut.seed", -1, "run TestPowerCut for this seed only")
)

// acked is a batch whose WaitDurable returned nil: it must survive any crash.
type acked struct {
	offset   int64
	stored   []byte // the batch as stored (offsets and epoch assigned)
	pid      int64
	seq      int32
	position int // the batch's place in its producer's history, from 1
	// recent: at most recentBatchesMax-1 batches of the same producer were
	// appended after this one, so producer state must still know it.
	recent bool
}

// TestPowerCut drives a partition through a random workload (idempotent and
// plain appends, acknowledged or not, retention, DeleteRecords, restarts)
// and cuts the power at a random step, tearing unsynced writes. After
// recovery: every acknowledged batch is present byte for byte at its offset
// (unless retention or DeleteRecords removed it), the log is contiguous, and
// a retry of any acknowledged idempotent batch is recognised as a duplicate.
// A failing seed is printed; rerun it with -powercut.seed=N.
func TestPowerCut(t *testing.T) {
	first, last := int64(0), int64(*powercutSeeds)
	if *powercutSeed >= 0 {
		first, last = *powercutSeed, *powercutSeed+1
	}
	for seed := first; seed < last; seed++ {
		if err := powerCut(t, seed); err != nil {
			t.Fatalf("seed %d: %v (rerun: go test ./partition -run TestPowerCut -powercut.seed=%d)", seed, err, seed)
		}
	}
	t.Logf("power cuts survived: %d seeds", last-first)
}

func powerCut(t *testing.T, seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	cfs := vfs.NewCrashFS()
	cfg := DefaultConfig()
	cfg.Storage.SegmentBytes = int64(300 + rng.IntN(2000))
	cfg.CheckpointIntervalMs = 1
	cfg.RetentionBytes = -1
	fsys := slowSyncFS{FS: cfs, delay: 100 * time.Microsecond}
	p, err := Open(testEnv(fsys), "/data/t-0", "t", 0, cfg)
	if err != nil {
		return err
	}
	var acks []acked
	seqs := map[int64]int32{}
	appended := map[int64]int{} // batches appended per producer
	steps := 5 + rng.IntN(60)
	for step := 0; step < steps; step++ {
		switch op := rng.IntN(10); {
		case op < 7:
			a, ok, err := randomAppend(p, rng, seqs)
			if err != nil {
				return err
			}
			if a.pid >= 0 {
				appended[a.pid]++
				a.position = appended[a.pid]
			}
			if ok {
				acks = append(acks, a)
			}
		case op == 7 && p.HighWatermark() > 0:
			if _, err := p.DeleteRecordsBefore(context.Background(), rng.Int64N(p.HighWatermark()+1)); err != nil {
				return fmt.Errorf("delete records: %w", err)
			}
		case op == 8:
			if err := p.Clean(time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("clean: %w", err)
			}
		default:
			if err := p.Close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			if p, err = Open(testEnv(fsys), "/data/t-0", "t", 0, cfg); err != nil {
				return fmt.Errorf("reopen: %w", err)
			}
		}
	}
	crashed := cfs.Crash(vfs.CrashOptions{Rand: rng, TearUnsynced: true})
	_ = p.Close() // the old process is gone; its files are never looked at again
	p, err = Open(testEnv(crashed), "/data/t-0", "t", 0, cfg)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer p.Close()
	for i := range acks {
		acks[i].recent = acks[i].pid >= 0 && appended[acks[i].pid]-acks[i].position < recentBatchesMax
	}
	return checkRecovered(p, acks)
}

// randomAppend appends one batch, idempotent or not, and acknowledges it
// (waits for durability) two times in three.
func randomAppend(p *Partition, rng *rand.Rand, seqs map[int64]int32) (acked, bool, error) {
	n := 1 + rng.IntN(4)
	pid := int64(-1)
	if rng.IntN(2) == 0 {
		pid = int64(1 + rng.IntN(2))
	}
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Offset: int64(i), TimestampMs: time.Now().UnixMilli(), Key: []byte{byte(rng.IntN(5))},
			Value: []byte(fmt.Sprintf("%d-%d", rng.Int64(), i))}
	}
	tmpl := batch.Header{ProducerID: pid, ProducerEpoch: 0, BaseSequence: -1}
	if pid >= 0 {
		tmpl.BaseSequence = seqs[pid]
	}
	data, err := batch.Encode(tmpl, int32(n-1), recs, batch.Codec(rng.IntN(5)))
	if err != nil {
		return acked{}, false, err
	}
	res, err := p.Append(data)
	if err != nil {
		return acked{}, false, fmt.Errorf("append: %w", err)
	}
	if pid >= 0 {
		seqs[pid] += int32(n)
	}
	if rng.IntN(3) == 0 {
		return acked{pid: pid}, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitDurable(ctx, res.LastOffset); err != nil {
		return acked{}, false, fmt.Errorf("wait durable: %w", err)
	}
	return acked{offset: res.BaseOffset, stored: data, pid: pid, seq: tmpl.BaseSequence}, true, nil
}

func checkRecovered(p *Partition, acks []acked) error {
	start, hwm := p.LogStartOffset(), p.HighWatermark()
	for _, a := range acks {
		if a.offset < start {
			continue // removed by DeleteRecords or retention, which is allowed
		}
		if a.offset >= hwm {
			return fmt.Errorf("acknowledged batch at %d lost: high watermark %d", a.offset, hwm)
		}
		res, err := p.Read(a.offset, 1)
		if err != nil {
			return fmt.Errorf("read acknowledged batch at %d: %w", a.offset, err)
		}
		_, whole, _, err := batch.Next(res.Records)
		if err != nil {
			return fmt.Errorf("acknowledged batch at %d: %w", a.offset, err)
		}
		if !bytes.Equal(whole, a.stored) {
			return fmt.Errorf("acknowledged batch at %d differs after recovery", a.offset)
		}
	}
	// The log is contiguous from its start to the high watermark.
	for next := start; next < hwm; {
		res, err := p.Read(next, 1<<20)
		if err != nil {
			return fmt.Errorf("read at %d: %w", next, err)
		}
		for data := res.Records; len(data) > 0; {
			h, _, rest, err := batch.Next(data)
			if err != nil {
				return fmt.Errorf("batch after %d: %w", next, err)
			}
			if h.BaseOffset > next || h.NextOffset() <= next {
				return fmt.Errorf("gap: batch [%d, %d) where %d was expected", h.BaseOffset, h.NextOffset(), next)
			}
			next, data = h.NextOffset(), rest
		}
	}
	// Retries of acknowledged idempotent batches among their producer's last
	// five are recognised as duplicates.
	for _, a := range acks {
		if !a.recent {
			continue
		}
		pid := a.pid
		h, _, _, err := batch.Next(a.stored)
		if err != nil {
			return err
		}
		dup, err := p.producersCheck(h)
		if err != nil {
			return fmt.Errorf("retry of producer %d sequence %d after recovery: %w", pid, a.seq, err)
		}
		if dup == nil || dup.BaseOffset != a.offset {
			return fmt.Errorf("retry of producer %d sequence %d after recovery not recognised (%+v)", pid, a.seq, dup)
		}
	}
	return nil
}

// producersCheck asks producer state about a batch under the writer lock.
func (p *Partition) producersCheck(h batch.Header) (*appendedBatch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.producers.check(h, marker{}, false)
}

// slowSyncFS delays every file sync, so that a power cut taken right after a
// produce is acknowledged lands while later syncs are still in flight: an
// acknowledgement given before its sync completed would then be caught.
type slowSyncFS struct {
	vfs.FS
	delay time.Duration
}

type slowSyncFile struct {
	vfs.File
	delay time.Duration
}

func (f slowSyncFile) Sync() error {
	time.Sleep(f.delay)
	return f.File.Sync()
}

func (s slowSyncFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return slowSyncFile{File: f, delay: s.delay}, nil
}

func (s slowSyncFS) Create(name string) (vfs.File, error)     { return s.wrap(s.FS.Create(name)) }
func (s slowSyncFS) OpenAppend(name string) (vfs.File, error) { return s.wrap(s.FS.OpenAppend(name)) }
func (s slowSyncFS) Open(name string) (vfs.File, error)       { return s.wrap(s.FS.Open(name)) }
