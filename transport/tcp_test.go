package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/env"
)

// TestTwoNodesExchangeMessagesOfManyGroups sends messages of many groups
// both ways between two transports on loopback: each arrives once, whole,
// tagged with its sender and group, and each group's messages in order.
func TestTwoNodesExchangeMessagesOfManyGroups(t *testing.T) {
	a, b := startNode(t, 1, "", nil), startNode(t, 2, "", nil)
	connect(t, a, b)
	const groups, perGroup = 50, 3
	for round := uint64(0); round < perGroup; round++ {
		for g := uint64(0); g < groups; g++ {
			a.Send(2, g, []*raftpb.Message{appendMessage(rid(1), rid(2), 5, round, []byte{byte(g), byte(round)})})
			b.Send(1, g, []*raftpb.Message{heartbeat(rid(2), rid(1), round)})
		}
	}
	for _, n := range []*node{a, b} {
		next := map[uint64]uint64{} // group → next round expected
		for i := 0; i < groups*perGroup; i++ {
			d := n.receive(t)
			if d.from == n.cfg.NodeID || len(d.msgs) != 1 {
				t.Fatalf("node %d: delivery %+v", n.cfg.NodeID, d)
			}
			m := d.msgs[0]
			round := m.GetIndex()
			if m.GetType() == raftpb.MessageType_MsgHeartbeat {
				round = m.GetTerm()
			} else if !bytes.Equal(m.GetEntries()[0].GetData(), []byte{byte(d.group), byte(round)}) {
				t.Fatalf("group %d round %d: entry data %x", d.group, round, m.GetEntries()[0].GetData())
			}
			if round != next[d.group] {
				t.Fatalf("node %d group %d: round %d arrived, expected %d", n.cfg.NodeID, d.group, round, next[d.group])
			}
			next[d.group]++
		}
	}
	// Received counts are taken before delivery; sent ones after the write
	// returns, which may be after the peer read it.
	for _, n := range []*node{a, b} {
		if m := n.Metrics(); m.MessagesReceived != groups*perGroup || m.MessagesDropped != 0 {
			t.Fatalf("node %d metrics %+v", n.cfg.NodeID, m)
		}
	}
}

// TestThreeNodes connects three transports pairwise (each pair once, the
// lower id dialling) and delivers between every pair.
func TestThreeNodes(t *testing.T) {
	nodes := []*node{startNode(t, 1, "", nil), startNode(t, 2, "", nil), startNode(t, 3, "", nil)}
	connect(t, nodes...)
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				from.Send(to.cfg.NodeID, from.cfg.NodeID*10+to.cfg.NodeID, []*raftpb.Message{heartbeat(rid(from.cfg.NodeID), rid(to.cfg.NodeID), 1)})
			}
		}
	}
	for _, n := range nodes {
		seen := map[uint64]bool{}
		for i := 0; i < 2; i++ {
			d := n.receive(t)
			if d.group != d.from*10+n.cfg.NodeID || NodeOf(d.msgs[0].GetFrom()) != d.from {
				t.Fatalf("node %d: delivery %+v", n.cfg.NodeID, d)
			}
			seen[d.from] = true
		}
		if len(seen) != 2 {
			t.Fatalf("node %d heard from %v", n.cfg.NodeID, seen)
		}
	}
	for _, n := range nodes {
		if m := n.Metrics(); m.Connections != 2 {
			t.Fatalf("node %d made %d connections, want one per peer", n.cfg.NodeID, m.Connections)
		}
	}
}

// TestCoalescing shows the writer putting everything queued during a write
// into the next frame: while a large message is stuck in a write to a peer
// that does not read, a hundred Sends queue up, and they leave in one
// frame once the peer reads.
func TestCoalescing(t *testing.T) {
	b := startNode(t, 2, "", nil)
	if err := b.AddPeer(1, "unused: node 1 dials"); err != nil {
		t.Fatal(err)
	}
	fake := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := fake.handshake(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, b, 1)
	// 12 MiB exceeds what loopback socket buffers hold, so the write blocks
	// until the fake peer reads.
	big := appendMessage(rid(2), rid(1), 1, 0, make([]byte, 12<<20))
	b.Send(1, 0, []*raftpb.Message{big})
	const sends = 100
	for g := uint64(1); g <= sends; g++ {
		b.Send(1, g, []*raftpb.Message{heartbeat(rid(2), rid(1), g)})
	}
	frames, groups := 0, uint64(0)
	for groups < sends+1 {
		ds, err := fake.readBatch()
		if err != nil {
			t.Fatal(err)
		}
		frames++
		for _, d := range ds {
			if d.group != groups {
				t.Fatalf("group %d arrived, expected %d", d.group, groups)
			}
			groups++
		}
	}
	if frames > 2 {
		t.Fatalf("%d Sends left in %d frames, want at most 2", sends+1, frames)
	}
	// Sent frames are counted once their write returns, which may be after
	// the peer read them: one more frame, read, makes sure the writer
	// counted those before.
	b.Send(1, sends+1, []*raftpb.Message{heartbeat(rid(2), rid(1), 1)})
	if _, err := fake.readBatch(); err != nil {
		t.Fatal(err)
	}
	if m := b.Metrics(); m.FramesSent < uint64(frames) || m.FramesSent > uint64(frames)+1 || m.MessagesSent < sends+1 {
		t.Fatalf("metrics %+v, want %d frames and %d messages before the last", m, frames, sends+1)
	}
}

// TestOverflowDropsAndReportsUnreachable fills the queue of a peer that
// does not read: further Sends are dropped, counted and reported.
func TestOverflowDropsAndReportsUnreachable(t *testing.T) {
	b := startNode(t, 2, "", func(c *Config) { c.PeerQueueBytesMax = FrameBytesMaxDefault })
	if err := b.AddPeer(1, "unused"); err != nil {
		t.Fatal(err)
	}
	fake := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := fake.handshake(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, b, 1)
	big := appendMessage(rid(2), rid(1), 1, 0, make([]byte, 12<<20))
	// The writer blocks on the first (or has not taken it yet): of three,
	// at most two fit in flight and queue, so at least one is dropped.
	for i := 0; i < 3; i++ {
		b.Send(1, 0, []*raftpb.Message{big})
	}
	b.waitUnreachable(t, 1)
	m := b.Metrics()
	if m.MessagesDropped == 0 || m.BytesDropped < 12<<20 {
		t.Fatalf("metrics %+v, want a dropped message", m)
	}
	if st := b.Peers(); len(st) != 1 || !st[0].Connected || st[0].QueuedBytes > FrameBytesMaxDefault {
		t.Fatalf("peers %+v, queue bound %d", st, FrameBytesMaxDefault)
	}
	// Reported once per loss episode, not per dropped message.
	b.Send(1, 0, []*raftpb.Message{big})
	select {
	case id := <-b.Unreachable():
		t.Fatalf("node %d reported twice before anything was written to it", id)
	default:
	}
}

// TestSendWithoutConnection drops messages to an unknown peer and to a
// known one not connected, reporting both.
func TestSendWithoutConnection(t *testing.T) {
	a := startNode(t, 1, "", nil)
	if err := a.AddPeer(2, "127.0.0.1:1"); err != nil { // nobody listens on port 1
		t.Fatal(err)
	}
	a.Send(9, 0, []*raftpb.Message{heartbeat(rid(1), rid(9), 1)})
	a.Send(2, 0, []*raftpb.Message{heartbeat(rid(1), rid(2), 1)})
	a.waitUnreachable(t, 9)
	a.waitUnreachable(t, 2)
	if err := a.SendFrame(2, FrameNodeHeartbeat, []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("SendFrame to an unconnected peer: %v", err)
	}
	if m := a.Metrics(); m.MessagesDropped != 2 || m.FramesDropped != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestReconnectAfterRestart restarts the accepting node, then the dialling
// one, on the same addresses: the dialler reconnects and messages flow
// again both ways.
func TestReconnectAfterRestart(t *testing.T) {
	a, b := startNode(t, 1, "", nil), startNode(t, 2, "", nil)
	connect(t, a, b)
	addrA, addrB := a.Addr().String(), b.Addr().String()

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitDisconnected(t, a, 2)
	b = startNode(t, 2, addrB, nil)
	connect(t, a, b)
	exchange(t, a, b, 1)

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitDisconnected(t, b, 1)
	a = startNode(t, 1, addrA, nil)
	connect(t, a, b)
	exchange(t, a, b, 2)
}

// exchange sends one message each way and checks it arrives.
func exchange(t *testing.T, a, b *node, term uint64) {
	t.Helper()
	a.Send(2, 7, []*raftpb.Message{heartbeat(rid(1), rid(2), term)})
	b.Send(1, 7, []*raftpb.Message{heartbeat(rid(2), rid(1), term)})
	for _, n := range []*node{a, b} {
		if d := n.receive(t); d.group != 7 || d.msgs[0].GetTerm() != term {
			t.Fatalf("node %d: delivery %+v", n.cfg.NodeID, d)
		}
	}
}

// TestWrongClusterRefused: nodes of different clusters never connect, and
// both log why.
func TestWrongClusterRefused(t *testing.T) {
	a := startNode(t, 1, "", nil)
	b := startNode(t, 2, "", func(c *Config) { c.ClusterID = "cluster-2" })
	connectOnly(t, a, b)
	b.logs.wait(t, "refused inbound connection", "cluster-1", "cluster-2")
	a.logs.wait(t, "handshake failed", "cluster-2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.WaitConnected(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("connected across clusters: %v", err)
	}
	if a.Metrics().Connections != 0 || b.Metrics().Connections != 0 {
		t.Fatal("a connection across clusters was counted")
	}
}

// connectOnly adds the nodes as each other's peers without waiting.
func connectOnly(t *testing.T, a, b *node) {
	t.Helper()
	if err := a.AddPeer(b.cfg.NodeID, b.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPeer(a.cfg.NodeID, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
}

// TestOversizedFrameClosesConnection: a frame whose length exceeds the
// bound closes the connection (nothing of it is read) with a log line.
func TestOversizedFrameClosesConnection(t *testing.T) {
	b := startNode(t, 2, "", func(c *Config) { c.FrameBytesMax = frameBytesMaxMin; c.PeerQueueBytesMax = frameBytesMaxMin })
	if err := b.AddPeer(1, "unused"); err != nil {
		t.Fatal(err)
	}
	fake := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := fake.handshake(); err != nil {
		t.Fatal(err)
	}
	header := appendFrameHeader(nil, FrameRaftBatch, frameBytesMaxMin) // one byte over
	if _, err := fake.conn.Write(header); err != nil {
		t.Fatal(err)
	}
	b.logs.wait(t, "protocol error", "frame too large", "65537")
	if _, err := fake.r.ReadByte(); err != io.EOF {
		t.Fatalf("read after the oversized frame: %v, want EOF", err)
	}
	if m := b.Metrics(); m.ProtocolErrors != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestNewestConnectionWins: a second connection from the same dialler
// replaces the first, which is closed; messages go over the newest.
func TestNewestConnectionWins(t *testing.T) {
	b := startNode(t, 2, "", nil)
	if err := b.AddPeer(1, "unused"); err != nil {
		t.Fatal(err)
	}
	first := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := first.handshake(); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, b, 1)
	second := dialFake(t, b.Addr().String(), "cluster-1", 1)
	if _, err := second.handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.r.ReadByte(); err != io.EOF {
		t.Fatalf("first connection: %v, want EOF", err)
	}
	b.Send(1, 3, []*raftpb.Message{heartbeat(rid(2), rid(1), 4)})
	ds, err := second.readBatch()
	if err != nil || len(ds) != 1 || ds[0].group != 3 {
		t.Fatalf("second connection got %+v, %v", ds, err)
	}
}

// TestDiallerRuleAndUnknownPeers: a node refuses connections from nodes
// it does not know and from higher ids (which must accept, not dial).
func TestDiallerRuleAndUnknownPeers(t *testing.T) {
	b := startNode(t, 2, "", nil)
	if err := b.AddPeer(3, "unused"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{3, 4} {
		f := dialFake(t, b.Addr().String(), "cluster-1", id)
		if _, err := f.handshake(); err == nil {
			t.Fatalf("node %d was answered", id)
		}
	}
	if m := b.Metrics(); m.Refused != 2 || m.Connections != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestFramesOfOtherTypes: a frame of a reserved type reaches its handler
// in order with the Raft messages around it; a frame of a type without a
// handler is a protocol error.
func TestFramesOfOtherTypes(t *testing.T) {
	a := startNode(t, 1, "", nil)
	b := startNode(t, 2, "", func(c *Config) {
		c.Handlers = map[FrameType]FrameHandler{FrameNodeHeartbeat: func(from uint64, payload []byte) {
			c.Handler(from, 1<<63, []*raftpb.Message{{Context: append([]byte(nil), payload...)}})
		}}
	})
	connect(t, a, b)
	a.Send(2, 1, []*raftpb.Message{heartbeat(rid(1), rid(2), 1)})
	if err := a.SendFrame(2, FrameNodeHeartbeat, []byte("leaders")); err != nil {
		t.Fatal(err)
	}
	a.Send(2, 1, []*raftpb.Message{heartbeat(rid(1), rid(2), 2)})
	if d := b.receive(t); d.group != 1 || d.msgs[0].GetTerm() != 1 {
		t.Fatalf("first: %+v", d)
	}
	if d := b.receive(t); d.group != 1<<63 || string(d.msgs[0].GetContext()) != "leaders" {
		t.Fatalf("second: %+v", d)
	}
	if d := b.receive(t); d.group != 1 || d.msgs[0].GetTerm() != 2 {
		t.Fatalf("third: %+v", d)
	}
	if err := b.SendFrame(1, FrameJoin, []byte("?")); err != nil {
		t.Fatal(err)
	}
	a.logs.wait(t, "protocol error", "no handler for frame type Join")
}

// TestSendRefusesWhatFitsNoFrame drops a message larger than any frame
// may be, with a log line and an unreachable report, and keeps the
// connection.
func TestSendRefusesWhatFitsNoFrame(t *testing.T) {
	small := func(c *Config) { c.FrameBytesMax = frameBytesMaxMin; c.PeerQueueBytesMax = frameBytesMaxMin }
	a, b := startNode(t, 1, "", small), startNode(t, 2, "", small)
	connect(t, a, b)
	a.Send(2, 0, []*raftpb.Message{appendMessage(rid(1), rid(2), 1, 1, make([]byte, frameBytesMaxMin))})
	a.logs.wait(t, "dropped a frame over the bound")
	a.waitUnreachable(t, 2)
	exchange(t, a, b, 3)
	if m := a.Metrics(); m.MessagesDropped != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestRemovePeerAndCloseStopEveryGoroutine: removing a peer and closing
// transports leave no goroutine of theirs running.
func TestRemovePeerAndCloseStopEveryGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	nodes := []*node{startNode(t, 1, "", nil), startNode(t, 2, "", nil), startNode(t, 3, "", nil)}
	connect(t, nodes...)
	exchange(t, nodes[0], nodes[1], 1)
	nodes[0].RemovePeer(3)
	waitDisconnected(t, nodes[2], 1)
	nodes[0].Send(3, 0, []*raftpb.Message{heartbeat(rid(1), rid(3), 1)})
	if m := nodes[0].Metrics(); m.MessagesDropped != 1 {
		t.Fatalf("a message to a removed peer was not dropped: %+v", m)
	}
	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
	}
	// A goroutine that called wg.Done may take a moment to exit.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 1000 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHandshakeTimeout: a connection that does not complete its handshake
// within HandshakeTimeout on the env's clock is closed.
func TestHandshakeTimeout(t *testing.T) {
	clock := env.NewManualClock(time.Unix(1_000_000, 0))
	b := startNodeOn(t, clock, 2, "", func(c *Config) { c.HandshakeTimeout = time.Second })
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := clock.WaitArmed(ctx, clock.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a connection past its handshake timeout: %v, want EOF", err)
	}
	b.logs.wait(t, "refused inbound connection")
	if m := b.Metrics(); m.Refused != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestReconnectWaitsOnTheEnvClock: after a failed dial the dialler waits
// on its env's clock, so a manual clock decides when it tries again.
func TestReconnectWaitsOnTheEnvClock(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrB := l.Addr().String()
	l.Close() // nothing listens there until node 2 starts
	clock := env.NewManualClock(time.Unix(1_000_000, 0))
	const delayMin = time.Second
	a := startNodeOn(t, clock, 1, "", func(c *Config) { c.ReconnectDelayMin, c.ReconnectDelayMax = delayMin, 4*delayMin })
	if err := a.AddPeer(2, addrB); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := clock.WaitArmed(ctx, clock.Now().Add(delayMin)); err != nil {
		t.Fatal(err) // the pause after the first refused dial
	}
	b := startNode(t, 2, addrB, nil)
	if err := b.AddPeer(1, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if a.Metrics().Connections != 0 {
		t.Fatal("connected before the clock moved")
	}
	clock.Advance(delayMin)
	waitConnected(t, a, 2)
	waitConnected(t, b, 1)
	exchange(t, a, b, 1)
}

// TestReconnectDelay: the pause doubles from the minimum to the maximum
// and is jittered down by at most half.
func TestReconnectDelay(t *testing.T) {
	const lo, hi = 10 * time.Millisecond, 70 * time.Millisecond
	for _, tc := range []struct {
		prev       time.Duration
		random     uint64
		next, wait time.Duration
	}{
		{0, 0, lo, lo},
		{lo, 0, 2 * lo, 2 * lo},
		{2 * lo, uint64(lo), 4 * lo, 3 * lo},
		{4 * lo, 0, hi, hi},
		{hi, uint64(hi / 2), hi, hi - hi/2},
		{hi, uint64(hi/2) + 1, hi, hi}, // random wraps modulo half+1
		{1 << 62, 0, hi, hi},           // doubling overflows
	} {
		next, wait := reconnectDelay(tc.prev, lo, hi, tc.random)
		if next != tc.next || wait != tc.wait {
			t.Errorf("reconnectDelay(%v, random %d) = %v, %v; want %v, %v", tc.prev, tc.random, next, wait, tc.next, tc.wait)
		}
	}
}

// TestConfigValidate refuses configurations that cannot work.
func TestConfigValidate(t *testing.T) {
	valid := Config{ClusterID: "c", NodeID: 1, ListenAddr: "127.0.0.1:0", Handler: func(uint64, uint64, []*raftpb.Message) {}}
	if err := valid.withDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Config){
		"no cluster":         func(c *Config) { c.ClusterID = "" },
		"node 0":             func(c *Config) { c.NodeID = 0 },
		"no address":         func(c *Config) { c.ListenAddr = "" },
		"no handler":         func(c *Config) { c.Handler = nil },
		"tiny frames":        func(c *Config) { c.FrameBytesMax = 100 },
		"queue under frame":  func(c *Config) { c.PeerQueueBytesMax = c.FrameBytesMax - 1 },
		"delays reversed":    func(c *Config) { c.ReconnectDelayMax = c.ReconnectDelayMin / 2 },
		"raft batch handler": func(c *Config) { c.Handlers = map[FrameType]FrameHandler{FrameRaftBatch: func(uint64, []byte) {}} },
	} {
		c := valid.withDefaults()
		change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
