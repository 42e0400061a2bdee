package partition

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"path"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

var streamCutSeeds = flag.Int("streamcut.seeds", 8, "seeds TestStreamIndexPowerCut runs")

// TestStreamIndexPowerCut: the stream index lives on the partition's own
// filesystem, so a power cut takes from it whatever was not synced, as it
// does from the log. After recovery every stream's revision counts exactly
// its records in the recovered log: the index neither lost what it must
// replay nor kept what the log lost.
func TestStreamIndexPowerCut(t *testing.T) {
	for seed := range int64(*streamCutSeeds) {
		if err := streamIndexPowerCut(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func streamIndexPowerCut(seed int64) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	cfs := vfs.NewCrashFS()
	cfg := DefaultConfig()
	cfg.DeleteSegments, cfg.Streams = false, true
	cfg.Storage.SegmentBytes = int64(4096 + rng.IntN(1<<16))
	const dir = "/data/ev-0"
	p, err := Open(testEnv(cfs), dir, "ev", 0, cfg)
	if err != nil {
		return err
	}
	written := 0
	for range 3 + rng.IntN(6) {
		n := 1 + rng.IntN(1500)
		if err := appendEvents(p, written, n); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		written += n
		switch rng.IntN(3) {
		case 0:
			if err := p.WaitDurable(context.Background(), int64(written)-1); err != nil {
				return fmt.Errorf("wait durable: %w", err)
			}
		case 1: // a clean restart flushes the index to its files
			if err := p.Close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			if p, err = Open(testEnv(cfs), dir, "ev", 0, cfg); err != nil {
				return fmt.Errorf("reopen: %w", err)
			}
		}
	}
	crashed := cfs.Crash(vfs.CrashOptions{Rand: rng, TearUnsynced: true})
	_ = p.Close() // the old process is gone
	p, err = Open(testEnv(crashed), dir, "ev", 0, cfg)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer p.Close()
	if files, err := crashed.List(path.Join(dir, streamIndexDir)); err != nil || len(files) == 0 {
		return fmt.Errorf("no stream index files on the partition's filesystem (%v, %v)", files, err)
	}
	durable := p.HighWatermark()
	x, err := p.StreamIndex()
	if err != nil {
		return err
	}
	for k := range int64(100) {
		st, err := x.State(fmt.Sprintf("s-%d", k))
		if err != nil {
			return err
		}
		// appendEvents writes stream s-k at offsets k, k+100, ...
		want := (durable-k+99)/100 - 1
		if st.LastRevision != want {
			return fmt.Errorf("s-%d at revision %d after recovery, want %d (%d of %d records durable)", k, st.LastRevision, want, durable, written)
		}
	}
	return nil
}

// TestDeleteReportsIndexRemovalFailure: a stream index that cannot be
// removed makes Delete fail, instead of the topic's deletion reporting
// success over files left behind.
func TestDeleteReportsIndexRemovalFailure(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	cfg := DefaultConfig()
	cfg.DeleteSegments, cfg.Streams = false, true
	p, err := Open(testEnv(efs), "/data/ev-0", "ev", 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendEvents(p, 0, 10); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected remove failure")
	efs.Inject(vfs.Rule{Op: vfs.OpRemove, PathContains: streamIndexDir, Err: injected})
	if err := p.Delete(); !errors.Is(err, injected) {
		t.Fatalf("Delete = %v, want the index's removal failure", err)
	}
}
