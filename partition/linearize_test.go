package partition

import (
	"context"
	"errors"
	"testing"

	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestLinearizeOneVoter: the only voter confirms its own leadership at
// once, in the term its appends carry, with everything committed before
// the call readable; a closed scheduler makes it fail instead.
func TestLinearizeOneVoter(t *testing.T) {
	p := openOneVoter(t)
	res := appendCommitted(t, p, produce(t, 3, "a"))
	epoch, err := p.Linearize(context.Background())
	if err != nil || epoch != res.Term {
		t.Fatalf("Linearize: epoch %d, %v; want %d", epoch, err, res.Term)
	}
	if hwm := p.HighWatermark(); hwm != res.LastOffset+1 {
		t.Fatalf("high watermark %d after Linearize, want %d", hwm, res.LastOffset+1)
	}
	p.beforeClose() // the scheduler
	if _, err := p.Linearize(context.Background()); !errors.Is(err, replica.ErrClosed) {
		t.Fatalf("Linearize on a closed scheduler: %v, want ErrClosed", err)
	}
}

// TestLinearizeSingleWriter: a single-writer partition answers its epoch
// without asking anyone.
func TestLinearizeSingleWriter(t *testing.T) {
	p, err := Open(testEnv(vfs.NewMem()), partDir, "t", 0, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if epoch, err := p.Linearize(context.Background()); err != nil || epoch != p.LeaderEpoch() {
		t.Fatalf("Linearize: %d %v, want %d", epoch, err, p.LeaderEpoch())
	}
}
