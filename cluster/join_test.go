package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// TestJoinGivesUpOnTheEnvClock checks that a joining node's start timeout
// and its pauses between asks run on the node's clock: a member that never
// gives an answer of known outcome makes Open fail once StartTimeoutMs has
// passed on that clock, however little real time went by. On the wall
// clock (as before env.WithTimeout), Open would wait ten real minutes and
// a simulated node's start bound would mean real seconds.
func TestJoinGivesUpOnTheEnvClock(t *testing.T) {
	clock := env.NewManualClock(time.Unix(1_700_000_000, 0))
	e := env.Env{Clock: clock, Rand: env.NewSeededRand(1), FS: vfs.NewMem(), Logger: quiet}
	cfg := DefaultConfig("/data")
	cfg.NodeID, cfg.Join, cfg.RaftAddr, cfg.KafkaAddr = 4, "member:7000", "node-4:7000", "node-4:9092"
	cfg.RaftTickMs, cfg.RaftElectionTicks = 10, 12
	cfg.StartTimeoutMs = (10 * time.Minute).Milliseconds()
	var asked atomic.Int32
	cfg.Joiner = func(ctx context.Context, addr string, nodeID uint64, request []byte) (transport.Handshake, []byte, error) {
		asked.Add(1)
		return transport.Handshake{}, nil, fmt.Errorf("member's proposal: %w", controller.ErrTimeout)
	}
	opened := make(chan error, 1)
	go func() {
		c, err := Open(e, cfg)
		if err == nil {
			c.Close()
		}
		opened <- err
	}()
	realBound := time.After(20 * time.Second)
	for {
		select {
		case err := <-opened:
			if err == nil || !errors.Is(err, controller.ErrTimeout) {
				t.Fatalf("Open = %v, want the join's unknown outcome after the start timeout", err)
			}
			// Asked at once, then after each election timeout (120 ms).
			if n := asked.Load(); n < 4000 || n > 5001 {
				t.Fatalf("the member was asked %d times in 10 minutes of the clock, want about 5,000", n)
			}
			if passed := clock.Now().Sub(time.Unix(1_700_000_000, 0)); passed < 10*time.Minute {
				t.Fatalf("Open gave up after %v on the clock, before its start timeout", passed)
			}
			return
		case <-realBound:
			t.Fatalf("Open still waiting after 20 s of real time and %v on the clock: its start timeout is not on the env clock", clock.Now().Sub(time.Unix(1_700_000_000, 0)))
		default:
		}
		// Advance only while the node waits on a timer of its clock, so no
		// pause is skipped by a step taken before it was armed.
		armed, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if err := clock.WaitArmed(armed, clock.Now().Add(120*time.Millisecond)); err == nil {
			clock.Advance(120 * time.Millisecond)
		}
		cancel()
	}
}
