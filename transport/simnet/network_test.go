package simnet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// waitMax bounds each wait for another goroutine (a ping, a join); it is
// a guard against a hang, not a speed assertion.
const waitMax = 10 * time.Second

var start = time.Unix(1_700_000_000, 0)

// testNet is a network of nodes recording what their handlers got, as
// "from>to:what" in arrival order.
type testNet struct {
	t     *testing.T
	clock *env.ManualClock
	net   *Network
	nodes map[uint64]*Endpoint

	mu  sync.Mutex
	got []string
}

func newTestNet(t *testing.T, seed uint64, f Faults, ids ...uint64) *testNet {
	t.Helper()
	clock := env.NewManualClock(start)
	e := env.Env{Clock: clock, Rand: env.NewSeededRand(seed), FS: vfs.NewMem(), Logger: env.Real().Logger}
	n, err := New(e, f)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, clock: clock, net: n, nodes: map[uint64]*Endpoint{}}
	t.Cleanup(n.Close)
	for _, id := range ids {
		tn.open(id, ids)
	}
	return tn
}

func (tn *testNet) open(id uint64, peers []uint64) {
	tn.t.Helper()
	ep, err := tn.net.Open(transport.Config{NodeID: id,
		Handler: func(from, group uint64, msgs []*raftpb.Message) {
			for _, m := range msgs {
				tn.record(fmt.Sprintf("%d>%d:g%d/%d", from, id, group, m.GetIndex()))
			}
		},
		Handlers: map[transport.FrameType]transport.FrameHandler{
			transport.FrameNodeHeartbeat: func(from uint64, payload []byte) {
				tn.record(fmt.Sprintf("%d>%d:%s", from, id, payload))
			},
		}})
	if err != nil {
		tn.t.Fatal(err)
	}
	for _, p := range peers {
		if p != id {
			if err := ep.AddPeer(p, ""); err != nil {
				tn.t.Fatal(err)
			}
		}
	}
	tn.nodes[id] = ep
}

func (tn *testNet) record(s string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	tn.got = append(tn.got, s)
}

func (tn *testNet) frame(from, to uint64, what string) {
	tn.t.Helper()
	if err := tn.nodes[from].SendFrame(to, transport.FrameNodeHeartbeat, []byte(what)); err != nil {
		tn.t.Fatal(err)
	}
}

// raft sends one message of group 1 with index idx between replicas of
// nodes from and to (incarnation 1).
func (tn *testNet) raft(from, to, idx uint64) {
	tn.nodes[from].Send(to, 1, []*raftpb.Message{message(from<<transport.IncarnationBits|1, to<<transport.IncarnationBits|1, idx)})
}

func message(from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MessageType_MsgApp.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Index: proto.Uint64(index)}
}

// settle advances the clock by d, delivers what is due, checks that
// every frame sent is accounted for (delivered, blocked, lost, dropped,
// or still in flight past the clock's time), and returns what arrived
// since the last call.
func (tn *testNet) settle(d time.Duration) []string {
	tn.t.Helper()
	tn.clock.Advance(d)
	tn.net.DeliverDue()
	s := tn.net.Stats()
	tn.net.mu.Lock()
	due := len(tn.net.flights) > 0 && !tn.net.flights[0].at.After(tn.clock.Now())
	onWire := uint64(len(tn.net.flights) + len(tn.net.held))
	tn.net.mu.Unlock()
	if due || s.Delivered+s.Blocked+s.Lost+onWire != s.Sent-s.Dropped+s.Duplicated {
		tn.t.Fatalf("frames not accounted for after DeliverDue: %+v, %d on the wire, one due %v", s, onWire, due)
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	got := tn.got
	tn.got = nil
	return got
}

// TestNetworkDeliversOnTheClock: nothing arrives before its delay has
// passed on the env clock; frames due together arrive in send order, Raft
// messages to the Raft handler and frames to their type's handler.
func TestNetworkDeliversOnTheClock(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: 5 * time.Millisecond, DelayMax: 5 * time.Millisecond}, 1, 2, 3)
	tn.frame(1, 2, "a")
	tn.raft(1, 2, 7)
	tn.frame(3, 2, "b")
	if got := tn.settle(4 * time.Millisecond); len(got) != 0 {
		t.Fatalf("delivered before the delay: %v", got)
	}
	want := []string{"1>2:a", "1>2:g1/7", "3>2:b"}
	if got := tn.settle(time.Millisecond); !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	m := tn.nodes[2].Metrics()
	if m.FramesReceived != 3 || m.MessagesReceived != 1 {
		t.Fatalf("receiver metrics %+v", m)
	}
}

// TestNetworkFaultsFromTheSeed: with drops, duplicates and random delays
// each frame's fate comes from the seed: the same seed delivers the same
// frames in the same order, another seed another order; every frame is
// dropped, delivered once, or twice.
func TestNetworkFaultsFromTheSeed(t *testing.T) {
	run := func(seed uint64) ([]string, Stats) {
		tn := newTestNet(t, seed, Faults{DropPercent: 20, DuplicatePercent: 20, DelayMin: time.Millisecond, DelayMax: 20 * time.Millisecond}, 1, 2)
		for i := range 200 {
			tn.frame(1, 2, fmt.Sprint(i))
		}
		return tn.settle(time.Second), tn.net.Stats()
	}
	a, statsA := run(7)
	b, _ := run(7)
	c, _ := run(8)
	if !slices.Equal(a, b) {
		t.Fatal("one seed, two different runs")
	}
	if slices.Equal(a, c) {
		t.Fatal("two seeds, one run")
	}
	if statsA.Dropped == 0 || statsA.Duplicated == 0 || statsA.Delivered != statsA.Sent-statsA.Dropped+statsA.Duplicated {
		t.Fatalf("stats %+v", statsA)
	}
	if slices.IsSorted(a) {
		t.Fatal("random delays did not reorder")
	}
	counts := map[string]int{}
	for _, s := range a {
		counts[s]++
	}
	for s, n := range counts {
		if n > 2 {
			t.Fatalf("%s delivered %d times", s, n)
		}
	}
}

// TestNetworkCutsAndHeal: a one-way cut loses frames that way only and the
// sender hears of the loss once; heal restores the link.
func TestNetworkCutsAndHeal(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: time.Millisecond, DelayMax: time.Millisecond}, 1, 2)
	tn.net.Cut(1, 2)
	tn.frame(1, 2, "lost1")
	tn.frame(1, 2, "lost2")
	tn.frame(2, 1, "back")
	if got := tn.settle(time.Millisecond); !slices.Equal(got, []string{"2>1:back"}) {
		t.Fatalf("across a one-way cut: %v", got)
	}
	select {
	case id := <-tn.nodes[1].Unreachable():
		if id != 2 {
			t.Fatalf("unreachable %d", id)
		}
	default:
		t.Fatal("the sender was not told of the loss")
	}
	select {
	case id := <-tn.nodes[1].Unreachable():
		t.Fatalf("node %d reported twice", id)
	default:
	}
	tn.net.Heal()
	tn.frame(1, 2, "healed")
	if got := tn.settle(time.Millisecond); !slices.Equal(got, []string{"1>2:healed"}) {
		t.Fatalf("after heal: %v", got)
	}
	if s := tn.net.Stats(); s.Blocked != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestNetworkPartitionShapes: the links each partition leaves.
func TestNetworkPartitionShapes(t *testing.T) {
	all := []uint64{1, 2, 3, 4, 5}
	links := func(n *Network) string {
		var out []string
		for _, a := range all {
			for _, b := range all {
				if a >= b {
					continue
				}
				switch ab, ba := n.Linked(a, b), n.Linked(b, a); {
				case ab && ba:
					out = append(out, fmt.Sprintf("%d-%d", a, b))
				case ab:
					out = append(out, fmt.Sprintf("%d>%d", a, b))
				case ba:
					out = append(out, fmt.Sprintf("%d>%d", b, a))
				}
			}
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		name  string
		apply func(n *Network)
		want  string
	}{
		{"isolate", func(n *Network) { n.Isolate(3, all) }, "[1-2 1-4 1-5 2-4 2-5 4-5]"},
		{"split", func(n *Network) { n.Split([]uint64{1, 2, 3}, []uint64{4, 5}) }, "[1-2 1-3 2-3 4-5]"},
		{"ring", func(n *Network) { n.Ring([]uint64{1, 3, 5, 2, 4}) }, "[1-3 1-4 2-4 2-5 3-5]"},
		{"bridge", func(n *Network) { n.Bridge([]uint64{1, 2, 3}, []uint64{3, 4, 5}, 3) }, "[1-2 1-3 2-3 3-4 3-5 4-5]"},
		{"one way", func(n *Network) { n.Cut(2, 1) }, "[1>2 1-3 1-4 1-5 2-3 2-4 2-5 3-4 3-5 4-5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNet(t, 1, Faults{})
			tc.apply(tn.net)
			if got := links(tn.net); got != tc.want {
				t.Fatalf("links %s, want %s", got, tc.want)
			}
			tn.net.Heal()
			if got := links(tn.net); got != "[1-2 1-3 1-4 1-5 2-3 2-4 2-5 3-4 3-5 4-5]" {
				t.Fatalf("healed: %s", got)
			}
		})
	}
}

// TestNetworkChecksAsTCPDoes: a Raft message from a replica of another
// node, or for one, is dropped and counted; a frame type without a handler
// is a protocol error; a send to a node not a peer, or not open, fails and
// is reported.
func TestNetworkChecksAsTCPDoes(t *testing.T) {
	tn := newTestNet(t, 1, Faults{}, 1, 2)
	tn.nodes[1].Send(2, 1, []*raftpb.Message{message(3<<transport.IncarnationBits, 2<<transport.IncarnationBits, 0)})
	tn.nodes[1].Send(2, 1, []*raftpb.Message{message(1<<transport.IncarnationBits, 3<<transport.IncarnationBits, 0)})
	if err := tn.nodes[1].SendFrame(2, transport.FrameSnapshotRead, nil); err != nil {
		t.Fatal(err)
	}
	if got := tn.settle(time.Millisecond); len(got) != 0 {
		t.Fatalf("delivered %v", got)
	}
	if m := tn.nodes[2].Metrics(); m.MessagesMisaddressed != 2 || m.ProtocolErrors != 1 {
		t.Fatalf("metrics %+v", m)
	}
	if err := tn.nodes[1].SendFrame(9, transport.FrameNodeHeartbeat, nil); !errors.Is(err, transport.ErrPeerUnknown) {
		t.Fatalf("to an unknown node: %v", err)
	}
	if id := <-tn.nodes[1].Unreachable(); id != 9 {
		t.Fatalf("unreachable %d", id)
	}
	if err := tn.nodes[1].AddPeer(9, ""); err != nil {
		t.Fatal(err)
	}
	if err := tn.nodes[1].SendFrame(9, transport.FrameNodeHeartbeat, nil); !errors.Is(err, transport.ErrNotConnected) {
		t.Fatalf("to a node not open: %v", err)
	}
}

// TestNetworkReopenLosesFramesInFlight: frames in flight to a node that
// closes, and opens again, are lost as a dead process's connection's are;
// frames sent to the new endpoint arrive.
func TestNetworkReopenLosesFramesInFlight(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: 10 * time.Millisecond, DelayMax: 10 * time.Millisecond}, 1, 2)
	tn.frame(1, 2, "old")
	if err := tn.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := tn.nodes[2].SendFrame(1, transport.FrameNodeHeartbeat, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("send from a closed endpoint: %v", err)
	}
	tn.open(2, []uint64{1})
	tn.frame(1, 2, "new")
	if got := tn.settle(10 * time.Millisecond); !slices.Equal(got, []string{"1>2:new"}) {
		t.Fatalf("delivered %v", got)
	}
	if s := tn.net.Stats(); s.Lost != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestNetworkDropsChosenFrames: SetDrop loses the frames it picks and
// nothing else.
func TestNetworkDropsChosenFrames(t *testing.T) {
	tn := newTestNet(t, 1, Faults{}, 1, 2)
	tn.net.SetDrop(func(from, to uint64, typ transport.FrameType) bool {
		return from == 1 && typ == transport.FrameNodeHeartbeat
	})
	tn.frame(1, 2, "dropped")
	tn.raft(1, 2, 3)
	tn.frame(2, 1, "kept")
	if got := tn.settle(time.Millisecond); !slices.Equal(got, []string{"1>2:g1/3", "2>1:kept"}) {
		t.Fatalf("delivered %v", got)
	}
	tn.net.SetDrop(nil)
	tn.frame(1, 2, "again")
	if got := tn.settle(time.Millisecond); !slices.Equal(got, []string{"1>2:again"}) {
		t.Fatalf("delivered %v", got)
	}
	if s := tn.net.Stats(); s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestNetworkObserverHearsEveryFate: the observer hears of a frame sent
// (with its delay; twice when duplicated), not sent for want of an open
// receiver, dropped, held by a paused end (at its send or at its arrival)
// and released when it resumes, blocked by a cut, lost to a closed end
// and delivered, each when it happens, and of nothing once it is unset.
func TestNetworkObserverHearsEveryFate(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: 2 * time.Millisecond, DelayMax: 2 * time.Millisecond}, 1, 2, 3)
	var heard []string // the observer runs in the sender's or DeliverDue's call, here this goroutine
	tn.net.SetObserver(func(event string, from, to uint64, typ transport.FrameType) {
		heard = append(heard, fmt.Sprintf("%s %d>%d %v", event, from, to, typ))
	})
	expect := func(want ...string) {
		t.Helper()
		if !slices.Equal(heard, want) {
			t.Fatalf("heard %q, want %q", heard, want)
		}
		heard = nil
	}
	tn.net.SetDrop(func(from, to uint64, _ transport.FrameType) bool { return from == 1 && to == 3 })
	tn.frame(1, 2, "kept")
	tn.frame(1, 3, "dropped")
	expect("send, due in 2ms 1>2 NodeHeartbeat", "drop 1>3 NodeHeartbeat")
	tn.settle(time.Millisecond)
	expect()
	tn.settle(time.Millisecond)
	expect("deliver 1>2 NodeHeartbeat")
	tn.net.SetDrop(nil)
	tn.net.Cut(2, 1)
	tn.frame(2, 1, "blocked")
	tn.frame(2, 3, "to a closed end")
	tn.nodes[3].Close()
	expect("send, due in 2ms 2>1 NodeHeartbeat", "send, due in 2ms 2>3 NodeHeartbeat")
	tn.settle(2 * time.Millisecond)
	expect("block 2>1 NodeHeartbeat", "lose 2>3 NodeHeartbeat")
	tn.net.Heal()
	tn.net.Pause(1)
	tn.frame(1, 2, "held")
	expect("hold 1>2 NodeHeartbeat")
	tn.net.Resume(1)
	expect("release 1>2 NodeHeartbeat")
	tn.settle(0)
	expect("deliver 1>2 NodeHeartbeat")
	tn.frame(2, 1, "held on arrival")
	tn.net.Pause(1)
	tn.settle(2 * time.Millisecond)
	expect("send, due in 2ms 2>1 NodeHeartbeat", "hold 2>1 NodeHeartbeat")
	tn.net.Resume(1)
	expect("release 2>1 NodeHeartbeat")
	tn.settle(0)
	expect("deliver 2>1 NodeHeartbeat")
	if err := tn.nodes[2].SendFrame(3, transport.FrameNodeHeartbeat, []byte("nobody there")); err == nil {
		t.Fatal("a frame to a closed node was sent")
	}
	expect("unconnected 2>3 NodeHeartbeat")
	if err := tn.net.SetFaults(Faults{DuplicatePercent: 100, DelayMin: time.Millisecond, DelayMax: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	tn.frame(1, 2, "twice")
	expect("send, due in 1ms 1>2 NodeHeartbeat", "send, due in 1ms 1>2 NodeHeartbeat")
	tn.settle(time.Millisecond)
	expect("deliver 1>2 NodeHeartbeat", "deliver 1>2 NodeHeartbeat")
	tn.net.SetObserver(nil)
	tn.frame(2, 1, "unheard")
	tn.settle(2 * time.Millisecond)
	expect()
}

// TestNetworkReportsGonePeers: a node that closes is reported gone to its
// peers once, PeerGone and PeerConnected follow it, and a cut link is not
// connected but not gone.
func TestNetworkReportsGonePeers(t *testing.T) {
	tn := newTestNet(t, 1, Faults{}, 1, 2, 3)
	one := tn.nodes[1]
	if !one.PeerConnected(2) || one.PeerGone(2) {
		t.Fatalf("open peer: connected %v, gone %v", one.PeerConnected(2), one.PeerGone(2))
	}
	tn.net.Cut(2, 1)
	if one.PeerConnected(2) || one.PeerGone(2) {
		t.Fatalf("cut peer: connected %v, gone %v", one.PeerConnected(2), one.PeerGone(2))
	}
	tn.net.Heal()
	if err := tn.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 3} {
		select {
		case got := <-tn.nodes[id].Gone():
			if got != 2 {
				t.Fatalf("node %d told node %d gone", id, got)
			}
		default:
			t.Fatalf("node %d was not told node 2 is gone", id)
		}
		if !tn.nodes[id].PeerGone(2) || tn.nodes[id].PeerConnected(2) {
			t.Fatalf("node %d: closed peer gone %v, connected %v", id, tn.nodes[id].PeerGone(2), tn.nodes[id].PeerConnected(2))
		}
	}
	select {
	case got := <-one.Gone():
		t.Fatalf("node 1 told twice: %d", got)
	default:
	}
	tn.open(2, []uint64{1, 3})
	if one.PeerGone(2) || !one.PeerConnected(2) {
		t.Fatalf("reopened peer: gone %v, connected %v", one.PeerGone(2), one.PeerConnected(2))
	}
}

// TestEndpointPing: a peer open and linked both ways answers a ping at
// once; behind a cut (either way) the ping fails once its bound has passed
// on the clock, not before; a closed peer's ping fails at once.
func TestEndpointPing(t *testing.T) {
	const bound = 100 * time.Millisecond
	tn := newTestNet(t, 1, Faults{}, 1, 2)
	if err := tn.nodes[1].Ping(2, bound); err != nil {
		t.Fatalf("ping of a linked peer: %v", err)
	}
	tn.net.Cut(2, 1) // the pong's way
	done := make(chan error, 1)
	go func() { done <- tn.nodes[1].Ping(2, bound) }()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := tn.clock.WaitArmed(ctx, start.Add(bound)); err != nil {
		t.Fatalf("the ping armed no timer for its bound: %v", err)
	}
	tn.clock.Advance(bound - time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ping across a cut ended before its bound: %v", err)
	default:
	}
	tn.clock.Advance(time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrPingTimeout) {
			t.Fatalf("ping across a cut: %v, want ErrPingTimeout", err)
		}
	case <-time.After(waitMax):
		t.Fatal("ping across a cut did not end at its bound")
	}
	tn.net.Heal()
	if err := tn.nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := tn.nodes[1].Ping(2, bound); !errors.Is(err, transport.ErrNotConnected) {
		t.Fatalf("ping of a closed peer: %v, want ErrNotConnected", err)
	}
}

// TestNetworkPauseHoldsFrames: frames to a paused node and frames it sends
// while paused are held, not lost nor reported unreachable, and arrive in
// the order they were held once it resumes; a frame sent before the pause
// arrives; the paused node is not connected meanwhile.
func TestNetworkPauseHoldsFrames(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: time.Millisecond, DelayMax: time.Millisecond}, 1, 2, 3)
	tn.frame(2, 1, "before")
	tn.net.Pause(2)
	tn.frame(1, 2, "to-paused-1")
	tn.frame(2, 3, "from-paused")
	tn.frame(3, 2, "to-paused-2")
	tn.frame(1, 3, "others")
	if got := tn.settle(10 * time.Millisecond); !slices.Equal(got, []string{"1>3:others", "2>1:before"}) {
		t.Fatalf("while node 2 is paused got %v, want only the frame sent before and the others', by link", got)
	}
	if tn.nodes[1].PeerConnected(2) || tn.nodes[2].PeerConnected(3) {
		t.Fatal("a paused node is connected")
	}
	select {
	case id := <-tn.nodes[1].Unreachable():
		t.Fatalf("node %d reported unreachable for a pause", id)
	default:
	}
	if s := tn.net.Stats(); s.Held != 3 || s.Lost+s.Blocked != 0 {
		t.Fatalf("stats %+v, want 3 held and none lost", s)
	}
	tn.net.Resume(2)
	want := []string{"1>2:to-paused-1", "2>3:from-paused", "3>2:to-paused-2"}
	if got := tn.settle(time.Millisecond); !slices.Equal(got, want) {
		t.Fatalf("after the resume got %v, want %v", got, want)
	}
	if !tn.nodes[1].PeerConnected(2) {
		t.Fatal("a resumed node is not connected")
	}
}

// A join reaches the member listening at the address asked, whose
// JoinHandler answers it with the member's handshake (cluster id, node id),
// even while frames wait on the clock; no endpoint at that address, a cut
// either way or a paused member fail it at once, as a refused dial; a
// handler answering nothing is a refusal; the caller's ctx bounds the wait.
func TestJoinReachesTheMemberAtItsAddress(t *testing.T) {
	tn := newTestNet(t, 1, Faults{DelayMin: time.Millisecond, DelayMax: time.Millisecond}, 1)
	release := make(chan struct{})
	heard := make(chan struct{}, 1)
	member, err := tn.net.Open(transport.Config{NodeID: 2, ClusterID: "c1", ListenAddr: "node-2:9093",
		Handler: func(uint64, uint64, []*raftpb.Message) {},
		Handlers: map[transport.FrameType]transport.FrameHandler{
			transport.FrameNodeHeartbeat: func(uint64, []byte) { heard <- struct{}{} },
		},
		JoinHandler: func(from uint64, payload []byte) []byte {
			switch string(payload) {
			case "refuse":
				return nil
			case "wait":
				<-release
			}
			return fmt.Appendf(nil, "welcome %d: %s", from, payload)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	defer close(release) // before Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()

	hello, answer, err := tn.net.Join(ctx, "node-2:9093", 7, []byte("hi"))
	if err != nil || hello.NodeID != 2 || hello.ClusterID != "c1" || string(answer) != "welcome 7: hi" {
		t.Fatalf("join: %+v %q %v", hello, answer, err)
	}
	if _, _, err := tn.net.Join(ctx, "node-3:9093", 7, []byte("hi")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("join at no endpoint's address: %v, want ErrUnreachable", err)
	}
	if _, _, err := tn.net.Join(ctx, "node-2:9093", 7, []byte("refuse")); !errors.Is(err, transport.ErrJoinRefused) {
		t.Fatalf("join answered nothing: %v, want ErrJoinRefused", err)
	}
	tn.net.Cut(2, 7)
	if _, _, err := tn.net.Join(ctx, "node-2:9093", 7, []byte("hi")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("join across a cut: %v, want ErrUnreachable", err)
	}
	tn.net.Heal()
	tn.net.Pause(2)
	if _, _, err := tn.net.Join(ctx, "node-2:9093", 7, []byte("hi")); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("join through a paused member: %v, want ErrUnreachable", err)
	}
	tn.net.Resume(2)

	// A handler that waits does not hold up the member's deliveries.
	waitCtx, stop := context.WithCancel(ctx)
	joined := make(chan error, 1)
	go func() {
		_, _, err := tn.net.Join(waitCtx, "node-2:9093", 7, []byte("wait"))
		joined <- err
	}()
	if err := tn.nodes[1].AddPeer(2, ""); err != nil {
		t.Fatal(err)
	}
	if err := tn.nodes[1].SendFrame(2, transport.FrameNodeHeartbeat, []byte("beat")); err != nil {
		t.Fatal(err)
	}
	tn.clock.Advance(time.Millisecond)
	tn.net.DeliverDue()
	select {
	case <-heard:
	case <-time.After(waitMax):
		t.Fatal("a frame to the member was not delivered while a join handler of it waited")
	}
	stop()
	if err := <-joined; !errors.Is(err, context.Canceled) {
		t.Fatalf("join whose ctx ended: %v, want context.Canceled", err)
	}
}

// TestNetworkDeliversOnTheCaller: the network delivers nothing by
// itself, even when frames are due; DeliverDue runs their
// handlers before it returns, then delivers what they sent that is due at
// once, and two handlers answering each other forever hold it only for
// its bound of rounds. After Close it delivers nothing.
func TestNetworkDeliversOnTheCaller(t *testing.T) {
	clock := env.NewManualClock(start)
	n, err := New(env.Env{Clock: clock, Rand: env.NewSeededRand(1), FS: vfs.NewMem(), Logger: env.Real().Logger}, Faults{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string // only the caller's goroutine appends, so no lock
	endpoints := map[uint64]*Endpoint{}
	for _, id := range []uint64{1, 2} {
		other := 3 - id
		ep, err := n.Open(transport.Config{NodeID: id, Handler: func(uint64, uint64, []*raftpb.Message) {},
			Handlers: map[transport.FrameType]transport.FrameHandler{
				transport.FrameNodeHeartbeat: func(from uint64, payload []byte) {
					got = append(got, fmt.Sprintf("%d>%d:%s", from, id, payload))
					switch string(payload) {
					case "ping":
						_ = endpoints[id].SendFrame(other, transport.FrameNodeHeartbeat, []byte("pong"))
					case "echo":
						_ = endpoints[id].SendFrame(other, transport.FrameNodeHeartbeat, []byte("echo"))
					}
				},
			}})
		if err != nil {
			t.Fatal(err)
		}
		endpoints[id] = ep
	}
	for id, ep := range endpoints {
		if err := ep.AddPeer(3-id, ""); err != nil {
			t.Fatal(err)
		}
	}
	send := func(what string) {
		t.Helper()
		if err := endpoints[1].SendFrame(2, transport.FrameNodeHeartbeat, []byte(what)); err != nil {
			t.Fatal(err)
		}
	}
	send("ping")
	time.Sleep(10 * time.Millisecond) // room for a goroutine that should not be there
	if len(got) != 0 || n.InFlight() != 1 {
		t.Fatalf("got %v, %d in flight: the network delivered by itself", got, n.InFlight())
	}
	if d := n.DeliverDue(); d != 2 || !slices.Equal(got, []string{"1>2:ping", "2>1:pong"}) {
		t.Fatalf("DeliverDue delivered %d: %v, want the ping and its answer", d, got)
	}
	got = nil
	send("echo")
	if d := n.DeliverDue(); d != deliverRoundsMax || len(got) != deliverRoundsMax {
		t.Fatalf("DeliverDue delivered %d (%d handled) of an endless exchange, want its bound %d", d, len(got), deliverRoundsMax)
	}
	if n.InFlight() != 1 {
		t.Fatalf("%d frames in flight, want the exchange's next", n.InFlight())
	}
	n.Close()
	if d := n.DeliverDue(); d != 0 {
		t.Fatalf("DeliverDue delivered %d after Close", d)
	}
}
