package transport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/faultproxy"
)

// TestPingAnsweredByALivePeer: a connected peer's reader answers a ping,
// one at a time and several at once (they share a round trip).
func TestPingAnsweredByALivePeer(t *testing.T) {
	a, b := startNode(t, 1, "", nil), startNode(t, 2, "", nil)
	connect(t, a, b)
	for _, n := range []struct {
		from *node
		to   uint64
	}{{a, 2}, {b, 1}} {
		if err := n.from.Ping(n.to, waitMax); err != nil {
			t.Fatalf("node %d pinging node %d: %v", n.from.cfg.NodeID, n.to, err)
		}
	}
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() { errs <- a.Ping(2, waitMax) }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent ping: %v", err)
		}
	}
	exchange(t, a, b, 5) // the connection carries Raft messages as before
	if err := a.Ping(3, waitMax); !errors.Is(err, ErrPeerUnknown) {
		t.Fatalf("ping of an unknown node: %v, want ErrPeerUnknown", err)
	}
}

// TestPingOfAClosedPeerFailsAtOnce: once a peer's process closed its
// connections, a ping fails with ErrNotConnected without waiting for its
// bound (the pinging node's clock never moves, so a timeout cannot end it).
func TestPingOfAClosedPeerFailsAtOnce(t *testing.T) {
	clock := env.NewManualClock(time.Unix(1000, 0))
	a, b := startNodeOn(t, clock, 1, "", nil), startNode(t, 2, "", nil)
	ticking(clock, func() { connect(t, a, b) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Ping(2, time.Millisecond) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotConnected) {
			t.Fatalf("ping of a closed peer: %v, want ErrNotConnected", err)
		}
	case <-time.After(waitMax):
		t.Fatal("ping of a closed peer waited for its bound")
	}
}

// TestPingThroughABlackholeTimesOutAtTheBound: a peer behind a black hole
// looks connected, and its ping fails with ErrPingTimeout once its bound
// has passed on the env's clock, not before.
func TestPingThroughABlackholeTimesOutAtTheBound(t *testing.T) {
	const bound = 100 * time.Millisecond
	clock := env.NewManualClock(time.Unix(1000, 0))
	a, b := startNodeOn(t, clock, 1, "", nil), startNode(t, 2, "", nil)
	var proxy *faultproxy.Proxy
	ticking(clock, func() { proxy = connectThroughProxy(t, a, b) })
	if err := a.Ping(2, bound); err != nil {
		t.Fatalf("ping before the black hole: %v", err)
	}

	proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
	start := clock.Now()
	done := make(chan error, 1)
	go func() { done <- a.Ping(2, bound) }()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := clock.WaitArmed(ctx, start.Add(bound)); err != nil {
		t.Fatalf("the ping armed no timer for its bound: %v", err)
	}
	clock.Advance(bound - time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ping through a black hole ended before its bound: %v", err)
	default:
	}
	clock.Advance(time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, ErrPingTimeout) {
			t.Fatalf("ping through a black hole: %v, want ErrPingTimeout", err)
		}
	case <-time.After(waitMax):
		t.Fatal("ping through a black hole did not end at its bound")
	}
}

// TestPingFramesRoundTrip: a Ping or Pong payload is exactly its sequence.
func TestPingFramesRoundTrip(t *testing.T) {
	for _, seq := range []uint64{0, 1, 1 << 63} {
		got, err := ParsePing(AppendPing(nil, seq))
		if err != nil || got != seq {
			t.Fatalf("ping %d parses as %d, %v", seq, got, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 7), make([]byte, 9)} {
		if _, err := ParsePing(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ping payload of %d bytes: %v, want ErrMalformed", len(bad), err)
		}
	}
}

// TestPingAndPongQueueOneEach: pings and pongs go ahead of the Raft
// traffic queued, and a newer one takes the place of one of its type not
// written yet, so a peer pinging without end cannot grow the queue.
func TestPingAndPongQueueOneEach(t *testing.T) {
	p := &peer{wake: make(chan struct{}, 1)}
	p.queue = []item{{typ: FrameRaftBatch, bytes: 100}}
	p.queuedBytes = 100
	for seq := uint64(1); seq <= 5; seq++ {
		p.pushFrontLocked(FramePong, AppendPing(nil, seq))
		p.pushFrontLocked(FramePing, AppendPing(nil, 10+seq))
	}
	if len(p.queue) != 3 || p.queuedBytes != 100+2*pingBytes {
		t.Fatalf("queue of %d items, %d bytes, want 3 items, %d bytes", len(p.queue), p.queuedBytes, 100+2*pingBytes)
	}
	for i, want := range []struct {
		typ FrameType
		seq uint64
	}{{FramePing, 15}, {FramePong, 5}} {
		it := p.queue[i]
		seq, err := ParsePing(it.payload)
		if it.typ != want.typ || err != nil || seq != want.seq {
			t.Fatalf("item %d: %v %d (%v), want %v %d", i, it.typ, seq, err, want.typ, want.seq)
		}
	}
	if p.queue[2].typ != FrameRaftBatch {
		t.Fatalf("the Raft item moved: %v", p.queue[2].typ)
	}
}

// ticking runs fn while clock moves on 10 ms every millisecond: a first
// dial that fails on a loaded machine is tried again after a reconnect
// delay on the node's clock, which would otherwise never pass.
func ticking(clock *env.ManualClock, fn func()) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				clock.Advance(10 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	fn()
}
