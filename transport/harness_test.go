package transport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/env"
)

// waitMax bounds every wait of these tests: an event that should take
// milliseconds on loopback and has not come by then will not come.
const waitMax = 10 * time.Second

// logSink keeps a transport's log lines and lets a test wait for one.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func newLogSink() *logSink { return &logSink{written: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.written)
	s.written = make(chan struct{})
	return s.buf.Write(p)
}

// wait returns the first line containing every one of parts.
func (s *logSink) wait(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.NewTimer(waitMax)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		lines, written := s.buf.String(), s.written
		s.mu.Unlock()
		for _, line := range strings.Split(lines, "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		select {
		case <-written:
		case <-deadline.C:
			t.Fatalf("no log line with %q; log:\n%s", parts, lines)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// delivery is one group's messages as a Handler received them.
type delivery struct {
	from, group uint64
	msgs        []*raftpb.Message
}

// node is a transport under test with what it received.
type node struct {
	*TCP
	inbox chan delivery
	logs  *logSink
}

// startNode starts a transport for id on a loopback port (or addr when
// given), with short reconnect pauses; change adjusts the config.
func startNode(t testing.TB, id uint64, addr string, change func(*Config)) *node {
	t.Helper()
	return startNodeOn(t, env.RealClock(), id, addr, change)
}

// startNodeOn is startNode with the given clock.
func startNodeOn(t testing.TB, clock env.Clock, id uint64, addr string, change func(*Config)) *node {
	t.Helper()
	n := &node{inbox: make(chan delivery, 1024), logs: newLogSink()}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := Config{
		ClusterID: "cluster-1", NodeID: id, Incarnation: 1, ListenAddr: addr,
		Handler:           func(from, group uint64, msgs []*raftpb.Message) { n.inbox <- delivery{from, group, msgs} },
		ReconnectDelayMin: 5 * time.Millisecond, ReconnectDelayMax: 50 * time.Millisecond,
	}
	if change != nil {
		change(&cfg)
	}
	e := env.Real()
	e.Clock, e.Rand = clock, env.NewSeededRand(id)
	e.Logger = slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tcp, err := New(e, cfg)
	if err != nil {
		t.Fatalf("node %d: %v", id, err)
	}
	n.TCP = tcp
	t.Cleanup(func() { _ = tcp.Close() })
	return n
}

// connect makes every node a peer of every other and waits until all are
// connected.
func connect(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.AddPeer(b.cfg.NodeID, b.Addr().String()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				waitConnected(t, a, b.cfg.NodeID)
			}
		}
	}
}

func waitConnected(t testing.TB, n *node, peer uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := n.WaitConnected(ctx, peer); err != nil {
		t.Fatalf("node %d to node %d: %v", n.cfg.NodeID, peer, err)
	}
}

// waitDisconnected waits until n has noticed that its connection to peer
// is gone.
func waitDisconnected(t *testing.T, n *node, peer uint64) {
	t.Helper()
	deadline := time.NewTimer(waitMax)
	defer deadline.Stop()
	for {
		connected, changed := n.peer(peer).state()
		if !connected {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("node %d still connected to node %d", n.cfg.NodeID, peer)
		}
	}
}

// receive waits for the next delivery.
func (n *node) receive(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-n.inbox:
		return d
	case <-time.After(waitMax):
		t.Fatalf("node %d received nothing", n.cfg.NodeID)
		return delivery{}
	}
}

// waitUnreachable waits for the next unreachable report, which must name
// peer.
func (n *node) waitUnreachable(t *testing.T, peer uint64) {
	t.Helper()
	select {
	case id := <-n.Unreachable():
		if id != peer {
			t.Fatalf("node %d reported node %d unreachable, want %d", n.cfg.NodeID, id, peer)
		}
	case <-time.After(waitMax):
		t.Fatalf("node %d reported nothing unreachable; metrics %+v", n.cfg.NodeID, n.Metrics())
	}
}

// fakePeer speaks the protocol by hand, to send what a transport never
// would and to read (or not) at its own pace.
type fakePeer struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialFake connects to addr as node id of cluster and sends a handshake.
func dialFake(t *testing.T, addr string, cluster string, id uint64) *fakePeer {
	t.Helper()
	// A small receive buffer (no autotuning) makes a large frame block
	// the sender's write until the test reads.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	payload, err := EncodeHandshake(Handshake{Version: protocolVersion, ClusterID: cluster, NodeID: id, Incarnation: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(AppendFrame(nil, FrameHandshake, payload)); err != nil {
		t.Fatal(err)
	}
	return &fakePeer{conn: conn, r: bufio.NewReader(conn)}
}

// handshake reads the transport's answer.
func (f *fakePeer) handshake() (Handshake, error) {
	return readHandshake(f.r)
}

// readBatch reads one frame, which must be a RaftBatch, and returns its
// messages.
func (f *fakePeer) readBatch() ([]delivery, error) {
	typ, payload, err := ReadFrame(f.r, FrameBytesMaxDefault, nil)
	if err != nil {
		return nil, err
	}
	if typ != FrameRaftBatch {
		return nil, fmt.Errorf("frame type %v", typ)
	}
	groups, err := ParseRaftBatch(payload)
	if err != nil {
		return nil, err
	}
	var out []delivery
	for _, g := range groups {
		msgs, err := UnmarshalMessages(g)
		if err != nil {
			return nil, err
		}
		out = append(out, delivery{group: g.Group, msgs: msgs})
	}
	return out, nil
}
