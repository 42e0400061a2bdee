package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/env"
)

var (
	// ErrPeerUnknown: no peer of that node id was added.
	ErrPeerUnknown = errors.New("transport: unknown peer")
	// ErrNotConnected: the peer has no connection at the moment; what is
	// sent meanwhile is dropped, as raft tolerates.
	ErrNotConnected = errors.New("transport: peer not connected")
	// ErrQueueFull: the peer's queue holds PeerQueueBytesMax already (the
	// peer reads slower than this node sends).
	ErrQueueFull = errors.New("transport: peer queue full")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport: closed")
)

// handshakeFrameBytesMax bounds the first frame of a connection: a
// handshake is at most 278 bytes, so a stranger cannot make a node
// allocate FrameBytesMax before saying who it is.
const handshakeFrameBytesMax = 512

// acceptRetryDelay is the pause after a failed Accept (out of file
// descriptors, typically) before the next.
const acceptRetryDelay = 50 * time.Millisecond

// TCP is the transport between nodes over TCP: one connection per pair of
// nodes, dialled by the lower node id and accepted by the higher, carrying
// frames both ways. Send never blocks: each peer has a bounded queue and a
// writer goroutine that writes everything queued since its last write as
// one frame. Safe for concurrent use.
type TCP struct {
	env         env.Env
	cfg         Config
	logger      *slog.Logger
	listener    net.Listener
	ctx         context.Context // cancelled by Close
	cancel      context.CancelFunc
	unreachable chan uint64
	gone        chan uint64
	metrics     counters
	hello       []byte // this node's handshake frame
	wg          sync.WaitGroup

	mu      sync.RWMutex
	closed  bool
	peers   map[uint64]*peer
	pending map[net.Conn]struct{} // inbound connections still handshaking
	joining map[net.Conn]string   // join connections being served, by source host (join.go)
}

// New listens on cfg.ListenAddr and starts accepting peers. Peers to send
// to are added with AddPeer.
func New(e env.Env, cfg Config) (*TCP, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	payload, err := EncodeHandshake(Handshake{Version: protocolVersion, ClusterID: cfg.ClusterID, NodeID: cfg.NodeID, Incarnation: cfg.Incarnation})
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{KeepAliveConfig: keepAliveConfig(cfg)}
	l, err := lc.Listen(context.Background(), "tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", cfg.ListenAddr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCP{
		env: e, cfg: cfg, listener: l, ctx: ctx, cancel: cancel,
		logger:      e.Logger.With("node", cfg.NodeID),
		unreachable: make(chan uint64, cfg.UnreachableReportsMax),
		gone:        make(chan uint64, cfg.UnreachableReportsMax),
		hello:       AppendFrame(nil, FrameHandshake, payload),
		peers:       map[uint64]*peer{},
		pending:     map[net.Conn]struct{}{},
		joining:     map[net.Conn]string{},
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the address the transport listens on (the port chosen when
// ListenAddr asked for port 0).
func (t *TCP) Addr() net.Addr { return t.listener.Addr() }

// Unreachable reports the node id of a peer a message to which was
// dropped: raft's ReportUnreachable for the groups with replicas there.
// A known peer is reported once until a frame reaches it again (an unknown
// node at every Send); a report beyond UnreachableReportsMax not yet
// received is dropped, and made again at the peer's next loss. Never
// closed.
func (t *TCP) Unreachable() <-chan uint64 { return t.unreachable }

// Gone reports the node id of a peer whose process has ended, as far as
// this node can tell: its connection was lost and a dial to its address
// was then refused (nothing listens there any more). A peer is reported
// once until it connects again; a report beyond UnreachableReportsMax not
// yet received is dropped (PeerGone still answers). Never closed.
func (t *TCP) Gone() <-chan uint64 { return t.gone }

// PeerGone reports whether node id is gone as Gone reported it and has
// not connected since.
func (t *TCP) PeerGone(id uint64) bool {
	p := t.peer(id)
	return p != nil && p.isGone()
}

// PeerConnected reports whether node id's connection is up (its
// handshake done, not yet lost).
func (t *TCP) PeerConnected(id uint64) bool {
	p := t.peer(id)
	return p != nil && p.isConnected()
}

// Metrics returns the counters so far.
func (t *TCP) Metrics() Metrics { return t.metrics.snapshot() }

// AddPeer makes node id, at addr, a peer: this node keeps a connection to
// it (dialling addr when its own id is lower, accepting otherwise). Adding
// a known peer changes the address used by the next dial.
func (t *TCP) AddPeer(id uint64, addr string) error {
	if id == 0 || id == t.cfg.NodeID {
		return fmt.Errorf("transport: cannot add node %d as a peer of node %d", id, t.cfg.NodeID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if p, ok := t.peers[id]; ok {
		p.setAddr(addr)
		return nil
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
	return nil
}

// RemovePeer stops talking to node id: its connection is closed, its queue
// dropped, its goroutines stopped before RemovePeer returns (so it must
// not be called from a Handler).
func (t *TCP) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
		<-p.done
	}
}

// WaitConnected blocks until node id's connection completed its handshake
// or ctx ends.
func (t *TCP) WaitConnected(ctx context.Context, id uint64) error {
	for {
		p := t.peer(id)
		if p == nil {
			return ErrPeerUnknown
		}
		connected, changed := p.state()
		if connected {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Send queues msgs of group for node to and returns at once. When they
// cannot be queued (unknown or unconnected peer, full queue, a message
// over the frame bound) they are dropped and the peer is reported on
// Unreachable, as raft expects of a lossy network.
func (t *TCP) Send(to uint64, group uint64, msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	it := item{typ: FrameRaftBatch, group: group, messages: make([]message, len(msgs)), bytes: raftBatchGroupHeaderBytes}
	for i, m := range msgs {
		b, err := marshalMessage(m)
		if err != nil { // a message raft built always marshals: a programming error
			t.logger.Error("transport: marshal raft message", "group", group, "err", err)
			t.dropped(it)
			return
		}
		it.messages[i] = b
		it.bytes += raftBatchMessageHeaderBytes + b.encodedBytes()
	}
	_ = t.enqueue(to, it)
}

// SendFrame queues a frame of type typ (not RaftBatch, Handshake, Ping or
// Pong) for node to, in order with the Raft messages sent before it. It
// returns an error when the frame is dropped instead; payload must not
// change after.
func (t *TCP) SendFrame(to uint64, typ FrameType, payload []byte) error {
	if typ == FrameRaftBatch || typ == FrameHandshake || typ == FramePing || typ == FramePong {
		return fmt.Errorf("transport: frame type %v is sent by the transport itself", typ)
	}
	return t.enqueue(to, item{typ: typ, payload: payload, bytes: len(payload)})
}

// enqueue queues it for node to, or drops it with the reason. A frame too
// large to send reports the peer unreachable too: raft then probes it
// again rather than waiting for an answer that cannot come.
func (t *TCP) enqueue(to uint64, it item) error {
	p := t.peer(to)
	if p == nil {
		t.dropped(it)
		t.report(to)
		return fmt.Errorf("%w: node %d", ErrPeerUnknown, to)
	}
	if it.frameBytes() > t.cfg.FrameBytesMax {
		t.logger.Warn("transport: dropped a frame over the bound", "peer", to, "type", it.typ, "bytes", it.frameBytes(), "max", t.cfg.FrameBytesMax)
		t.dropped(it)
		p.report()
		return fmt.Errorf("%w: %d bytes to node %d, at most %d", ErrFrameTooLarge, it.frameBytes(), to, t.cfg.FrameBytesMax)
	}
	return p.enqueue(it)
}

func (t *TCP) peer(id uint64) *peer {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.peers[id]
}

// dropped counts it as dropped.
func (t *TCP) dropped(it item) {
	t.metrics.bytesDropped.Add(uint64(it.bytes))
	if it.typ == FrameRaftBatch {
		t.metrics.messagesDropped.Add(uint64(len(it.messages)))
	} else {
		t.metrics.framesDropped.Add(1)
	}
}

// report tells the Unreachable reader that a message to node id was lost;
// false when the reader is behind and the report was dropped (it hears of
// this peer at its next loss).
func (t *TCP) report(id uint64) bool {
	select {
	case t.unreachable <- id:
		return true
	default:
		return false
	}
}

// reportGone tells the Gone reader that node id is gone, or drops the
// report when the reader is behind.
func (t *TCP) reportGone(id uint64) {
	select {
	case t.gone <- id:
	default:
	}
}

// Close stops accepting, closes every connection and returns once every
// goroutine of the transport has ended. Later Sends are dropped.
func (t *TCP) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.closed = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	for conn := range t.pending {
		conn.Close()
	}
	for conn := range t.joining {
		conn.Close()
	}
	t.mu.Unlock()
	t.cancel()
	err := t.listener.Close()
	for _, p := range peers {
		p.stop()
	}
	t.wg.Wait()
	return err
}

// acceptLoop hands each inbound connection to a handshake goroutine, at
// most HandshakesPendingMax at a time.
func (t *TCP) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.listener.Accept()
		if err == nil {
			if t.cfg.TLS != nil {
				// The TLS handshake runs at the first read, under the
				// handshake's watchdog.
				conn = tls.Server(conn, t.cfg.TLS)
			}
			conn = idleConn{Conn: conn, idle: t.cfg.ReadIdleTimeout}
		}
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			t.logger.Warn("transport: accept", "err", err)
			if !t.pause(t.ctx, acceptRetryDelay) {
				return
			}
			continue
		}
		if !t.trackPending(conn) {
			t.metrics.refused.Add(1)
			conn.Close()
			continue
		}
		t.wg.Add(1)
		go t.acceptHandshake(conn)
	}
}

// trackPending records conn as handshaking, unless the transport is
// closed or too many are.
func (t *TCP) trackPending(conn net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.pending) >= t.cfg.HandshakesPendingMax {
		return false
	}
	t.pending[conn] = struct{}{}
	return true
}

func (t *TCP) untrackPending(conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, conn)
}

// acceptHandshake reads a dialler's handshake, answers it and hands the
// connection to its peer, or closes it saying why.
func (t *TCP) acceptHandshake(conn net.Conn) {
	defer t.wg.Done()
	defer t.untrackPending(conn)
	stopWatchdog := t.watchdog(conn, t.cfg.HandshakeTimeout)
	defer stopWatchdog()
	r := bufio.NewReader(conn)
	h, err := readHandshake(r)
	if err == nil && t.isJoin(h) {
		t.serveJoin(conn, r, h, stopWatchdog)
		return
	}
	var p *peer
	if err == nil {
		p, err = t.acceptingPeer(h)
	}
	// A peer of this cluster is answered; so is one of another cluster,
	// so that it logs the reason too rather than seeing a bare close. An
	// unknown node is not: it learns nothing about this one.
	if err == nil || errors.Is(err, errOtherCluster) {
		if _, werr := conn.Write(t.hello); err == nil && werr != nil {
			err = fmt.Errorf("write handshake: %w", werr)
		}
	}
	if errors.Is(err, io.EOF) {
		// Closed before sending a byte: a peer's probe (peer.probe),
		// which only wanted to know that this node listens.
		t.logger.Debug("transport: inbound connection closed before its handshake", "remote", conn.RemoteAddr())
		conn.Close()
		return
	}
	if err != nil {
		t.metrics.refused.Add(1)
		t.logger.Warn("transport: refused inbound connection", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	if !stopWatchdog() {
		conn.Close() // the handshake timed out as it completed
		return
	}
	p.handoff(&link{conn: conn, r: r, hello: h})
}

// acceptingPeer returns the peer whose connections this node accepts,
// for a dialler's handshake.
func (t *TCP) acceptingPeer(h Handshake) (*peer, error) {
	if err := t.checkCluster(h); err != nil {
		return nil, err
	}
	p := t.peer(h.NodeID)
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: node %d", ErrPeerUnknown, h.NodeID)
	case p.dials:
		return nil, fmt.Errorf("node %d dialled node %d, but the lower id dials", h.NodeID, t.cfg.NodeID)
	}
	return p, nil
}

// errOtherCluster is wrapped by checkCluster's refusal.
var errOtherCluster = errors.New("another cluster")

// checkCluster refuses a peer of another cluster.
func (t *TCP) checkCluster(h Handshake) error {
	if h.ClusterID != t.cfg.ClusterID {
		return fmt.Errorf("%w: node %d belongs to cluster %q, this node to %q", errOtherCluster, h.NodeID, h.ClusterID, t.cfg.ClusterID)
	}
	return nil
}

// readHandshake reads the first frame of a connection, which must be a
// handshake.
func readHandshake(r *bufio.Reader) (Handshake, error) {
	typ, payload, err := ReadFrame(r, handshakeFrameBytesMax, nil)
	if err != nil {
		return Handshake{}, fmt.Errorf("read handshake: %w", err)
	}
	if typ != FrameHandshake {
		return Handshake{}, fmt.Errorf("%w: first frame is %v, not a handshake", ErrMalformed, typ)
	}
	return DecodeHandshake(payload)
}

// watchdog closes conn unless the returned stop is called within d; stop
// reports whether it came in time (conn is then left open).
func (t *TCP) watchdog(conn net.Conn, d time.Duration) (stop func() bool) {
	const armed, stopped, fired = 0, 1, 2
	var state atomic.Int32
	done := make(chan struct{})
	timer := t.env.Clock.NewTimer(d)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		select {
		case <-timer.C():
			if state.CompareAndSwap(armed, fired) {
				conn.Close()
			}
		case <-done:
			timer.Stop()
		}
	}()
	return func() bool {
		if state.CompareAndSwap(armed, stopped) {
			close(done)
			return true
		}
		return state.Load() == stopped
	}
}

// pause waits d on the env clock; false when ctx (the transport's, or a
// peer's derived from it) ended first.
func (t *TCP) pause(ctx context.Context, d time.Duration) bool {
	timer := t.env.Clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// random draws a number from the env's randomness.
func (t *TCP) random() uint64 {
	var b [8]byte
	_, _ = t.env.Rand.Read(b[:]) // never fails
	return binary.BigEndian.Uint64(b[:])
}

// keepAliveConfig has the kernel probe a connection idle for
// ReadIdleTimeout, so a peer gone without a word is noticed even while
// nothing is written to it.
func keepAliveConfig(cfg Config) net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: cfg.ReadIdleTimeout, Interval: cfg.ReadIdleTimeout / 4, Count: 4}
}

// clientTLS runs conn over TLS with cfg as the side that dialled addr,
// whose certificate must name addr's host; with no cfg, conn as it is.
func clientTLS(conn net.Conn, cfg *tls.Config, addr string) net.Conn {
	if cfg == nil {
		return conn
	}
	c := cfg.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil && c.ServerName == "" {
		c.ServerName = host
	}
	return tls.Client(conn, c)
}

// idleConn is a connection whose every Read fails once nothing arrived
// for idle (of real time: the deadline is the kernel's). Peers write at
// least a keepalive in that time, so a silent connection is a broken one.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}
