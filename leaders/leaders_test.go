package leaders

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

// recorder is a Sender keeping the heartbeats sent, failing for the nodes
// in down.
type recorder struct {
	mu   sync.Mutex
	sent map[uint64][]transport.NodeHeartbeat
	down map[uint64]bool
}

func (r *recorder) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if typ != transport.FrameNodeHeartbeat {
		return errors.New("not a heartbeat")
	}
	if r.down[to] {
		return errors.New("dropped")
	}
	hb, err := transport.ParseNodeHeartbeat(payload)
	if err != nil {
		return err
	}
	r.sent[to] = append(r.sent[to], hb)
	return nil
}

// last returns the last heartbeat sent to node.
func (r *recorder) last(t *testing.T, node uint64) transport.NodeHeartbeat {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent[node]) == 0 {
		t.Fatalf("nothing sent to node %d", node)
	}
	return r.sent[node][len(r.sent[node])-1]
}

func newTestLeaders(t *testing.T, clock *env.ManualClock, node uint64, s Sender) *Leaders {
	t.Helper()
	l, err := New(env.Env{Clock: clock, Rand: env.NewSeededRand(node)}, Config{NodeID: node, Incarnation: 1}, s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDriverSendsFullToPeersThatMissedSome: the first heartbeat is full
// to every peer; a peer whose frame was dropped, or that is new, gets the
// full list next time while the others get the delta.
func TestDriverSendsFullToPeersThatMissedSome(t *testing.T) {
	clock := env.NewManualClock(start)
	rec := &recorder{sent: map[uint64][]transport.NodeHeartbeat{}, down: map[uint64]bool{}}
	l := newTestLeaders(t, clock, 1, rec)
	l.SetPeers([]uint64{1, 2, 3})
	if err := l.LeadershipChanged(5, rep(1), replica.Leadership{Term: 1, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	next := l.step()
	for _, n := range []uint64{2, 3} {
		if h := rec.last(t, n); !h.Full || len(h.Entries) != 1 {
			t.Fatalf("first heartbeat to node %d: %+v", n, h)
		}
	}
	if _, ok := rec.sent[1]; ok {
		t.Fatal("a heartbeat sent to this node itself")
	}
	if !next.Equal(start.Add(IntervalDefault)) {
		t.Fatalf("next step %v, want the interval", next)
	}

	rec.down[3] = true
	clock.Advance(IntervalDefault)
	l.step()
	rec.down[3] = false
	l.SetPeers([]uint64{2, 3, 4})
	clock.Advance(IntervalDefault)
	l.step()
	if h := rec.last(t, 2); h.Full || h.Sequence != 3 {
		t.Fatalf("heartbeat to node 2: %+v, want the delta of sequence 3", h)
	}
	for _, n := range []uint64{3, 4} {
		if h := rec.last(t, n); !h.Full || h.Sequence != 3 || len(h.Entries) != 1 {
			t.Fatalf("heartbeat to node %d: %+v, want the full list of sequence 3", n, h)
		}
	}
}

// TestDriverDrawsBootID: each process draws its boot id from the env's
// Rand and sends it in every heartbeat; one given in the config is kept.
func TestDriverDrawsBootID(t *testing.T) {
	clock := env.NewManualClock(start)
	boots := map[uint64]bool{}
	for seed := uint64(1); seed <= 3; seed++ {
		rec := &recorder{sent: map[uint64][]transport.NodeHeartbeat{}}
		l, err := New(env.Env{Clock: clock, Rand: env.NewSeededRand(seed)}, Config{NodeID: 1, Incarnation: 1}, rec)
		if err != nil {
			t.Fatal(err)
		}
		l.SetPeers([]uint64{2})
		l.step()
		boot := rec.last(t, 2).BootID
		if boot == 0 || boots[boot] {
			t.Fatalf("seed %d: boot id %#x, zero or drawn before", seed, boot)
		}
		boots[boot] = true
	}
	l, err := New(env.Env{Clock: clock, Rand: env.NewSeededRand(1)}, Config{NodeID: 1, Incarnation: 1, BootID: 42}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.table.Config().BootID; got != 42 {
		t.Fatalf("boot id %d, want the configured 42", got)
	}
}

// TestDriverReceiveAndNotify: heartbeats change the table and close the
// Changed channel; a silent node's leaders are unknown once its liveness
// timeout passes, even before Run expires it.
func TestDriverReceiveAndNotify(t *testing.T) {
	clock := env.NewManualClock(start)
	l := newTestLeaders(t, clock, 2, &recorder{})
	changed := l.Changed()
	payload := transport.AppendNodeHeartbeat(nil, hb(1, 1, true, leads(5, 4, 1)))
	if err := l.Receive(3, payload); !errors.Is(err, transport.ErrMalformed) {
		t.Fatalf("heartbeat of node 1 from node 3: %v", err)
	}
	if err := l.Receive(1, payload[:10]); !errors.Is(err, transport.ErrMalformed) {
		t.Fatalf("cut heartbeat: %v", err)
	}
	select {
	case <-changed:
		t.Fatal("Changed closed by refused heartbeats")
	default:
	}
	if err := l.Receive(1, payload); err != nil {
		t.Fatal(err)
	}
	<-changed // closed, or the test hangs and times out
	if node, _, term, ok := l.Leader(5); !ok || node != 1 || term != 4 || !l.Alive(1) {
		t.Fatalf("leader of group 5: node %d term %d ok %v", node, term, ok)
	}
	changed = l.Changed()
	clock.Advance(LivenessTimeoutDefault)
	if _, _, term, ok := l.Leader(5); ok || term != 4 || l.Alive(1) {
		t.Fatalf("silent node's leader still known (term %d, ok %v)", term, ok)
	}
	<-changed
	s := l.Snapshot()
	if len(s.Groups) != 1 || s.Groups[0].Leader != 0 || len(s.Nodes) != 1 || s.Nodes[0].Alive {
		t.Fatalf("snapshot %+v", s)
	}
}

// TestRunTwoNodes runs two drivers on one manual clock, each sending to
// the other: they learn each other's leader, lose each other while the
// link is cut, and learn again when it heals.
func TestRunTwoNodes(t *testing.T) {
	clock := env.NewManualClock(start)
	link := &loopLink{nodes: map[uint64]*Leaders{}, delivered: map[uint64]chan struct{}{}}
	a := newTestLeaders(t, clock, 1, link)
	b := newTestLeaders(t, clock, 2, link)
	for n, l := range map[uint64]*Leaders{1: a, 2: b} {
		link.nodes[n], link.delivered[n] = l, make(chan struct{}, 1024)
		l.SetPeers([]uint64{1, 2})
	}
	if err := a.LeadershipChanged(5, rep(1), replica.Leadership{Term: 1, Leader: rep(1), Ready: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	var wg sync.WaitGroup
	for _, l := range []*Leaders{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); l.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	connected := func() bool {
		_, _, _, ok := b.Leader(5)
		return ok && b.Alive(1) && a.Alive(2)
	}

	link.until(ctx, t, clock, connected)
	link.setCut(true)
	clock.Advance(LivenessTimeoutDefault)
	if _, _, term, ok := b.Leader(5); ok || term != 1 || b.Alive(1) || a.Alive(2) {
		t.Fatalf("across a cut link: leader known %v (term %d), alive %v %v", ok, term, b.Alive(1), a.Alive(2))
	}
	link.setCut(false)
	link.until(ctx, t, clock, connected)
}

// loopLink delivers heartbeats between two drivers, nodes 1 and 2, in
// memory (Receive runs on the sender's goroutine), or loses them all while
// cut. delivered gets a value per heartbeat a node received.
type loopLink struct {
	mu        sync.Mutex
	cut       bool
	nodes     map[uint64]*Leaders
	delivered map[uint64]chan struct{}
}

func (k *loopLink) setCut(cut bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut = cut
}

func (k *loopLink) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	k.mu.Lock()
	cut := k.cut
	k.mu.Unlock()
	if cut {
		return nil // lost silently, as on a blackholed connection
	}
	if err := k.nodes[to].Receive(3-to, payload); err != nil {
		return err
	}
	k.delivered[to] <- struct{}{}
	return nil
}

// until advances the clock an interval at a time, each time waiting for a
// heartbeat to reach each node, until cond holds: at most 20 intervals.
func (k *loopLink) until(ctx context.Context, t *testing.T, clock *env.ManualClock, cond func() bool) {
	t.Helper()
	for i := 0; i < 20; i++ {
		if cond() {
			return
		}
		clock.Advance(IntervalDefault)
		for _, n := range []uint64{1, 2} {
			select {
			case <-k.delivered[n]:
			case <-ctx.Done():
				t.Fatalf("no heartbeat reached node %d: %v", n, ctx.Err())
			}
		}
	}
	t.Fatal("condition not reached in 20 intervals")
}

// TestRunStopsWithItsContext: Run returns once its context ends.
func TestRunStopsWithItsContext(t *testing.T) {
	l := newTestLeaders(t, env.NewManualClock(start), 1, &recorder{sent: map[uint64][]transport.NodeHeartbeat{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	cancel()
	<-done
}
