package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// bufferBytesKeptMax: a read or write buffer grown past this for a large
// frame is dropped after it, so an idle peer does not pin 16 MiB.
const bufferBytesKeptMax = 1 << 20

var (
	errStopped  = errors.New("peer removed or transport closed")
	errReplaced = errors.New("replaced by a newer connection from the peer")
)

// item is one Send or SendFrame waiting in a peer's queue.
type item struct {
	typ      FrameType
	group    uint64    // FrameRaftBatch: the group and its messages
	messages []message //
	payload  []byte    // other types
	bytes    int       // its share of a frame: the group entry, or the payload
}

// frameBytes is the length of a frame holding it alone.
func (it item) frameBytes() int {
	if it.typ == FrameRaftBatch {
		return frameLengthTypeOnlyBytes + raftBatchHeaderBytes + it.bytes
	}
	return frameLengthTypeOnlyBytes + it.bytes
}

// link is a connection whose handshake is done.
type link struct {
	conn  net.Conn
	r     *bufio.Reader // holds whatever the peer sent after its handshake
	hello Handshake     // the peer's
}

// peer is the connection to one other node and the queue in front of it.
// Its run goroutine connects (dialling, or waiting for the accept loop to
// hand over a connection), then writes the queue while a reader goroutine
// delivers what arrives, and starts over when the connection breaks.
type peer struct {
	t         *TCP
	id        uint64
	dials     bool // this node's id is the lower: it dials
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when run returns
	wake      chan struct{} // the queue got items
	linkReady chan struct{} // an accepted link waits in next

	mu          sync.Mutex
	addr        string
	stopped     bool
	conn        net.Conn // being set up or served: closed by stop
	next        *link    // accepted, not yet served
	connected   bool
	changed     chan struct{} // closed and replaced when connected changes
	queue       []item
	queuedBytes int
	reported    bool // reported unreachable since the last frame written
	// gone: since the last connection, a dial to addr was refused (see
	// probe); cleared when connected again.
	gone bool
	// pinging is the Ping in flight (ping.go); pingSeq numbers them.
	pinging *pingWait
	pingSeq uint64
}

func newPeer(t *TCP, id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		t: t, id: id, dials: t.cfg.NodeID < id, ctx: ctx, cancel: cancel, addr: addr,
		done: make(chan struct{}), wake: make(chan struct{}, 1), linkReady: make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
}

func (p *peer) run() {
	defer p.t.wg.Done()
	defer close(p.done)
	var l *link
	for first := true; ; first = false {
		if l == nil {
			if l = p.connect(first); l == nil {
				return
			}
		}
		if l = p.serve(l); l == nil && p.ctx.Err() == nil {
			p.probe()
		}
	}
}

// probe dials the peer's address right after its connection was lost,
// to tell a process that ended from a connection that broke: on a live
// host a refused dial (ECONNREFUSED) means nothing listens there any
// more. A timeout or an accepted dial says nothing of the kind (a black
// hole, a flapping link, a live peer), and neither does a dial the
// accepting side makes (it never redials). A dying process's listener may
// still accept into its backlog while its sockets close, and then resets
// what it accepted: an accepted probe is held probeHold, and one reset
// (or closed) meanwhile is made again, up to probeAttempts times. A live
// peer's accept loop keeps it open, waiting for a handshake that never
// comes, and drops it quietly when it closes.
func (p *peer) probe() {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout}
	for range probeAttempts {
		conn, err := d.DialContext(p.ctx, "tcp", addr)
		if err != nil {
			p.refused(err)
			return
		}
		dropped := droppedWithin(conn, probeHold)
		conn.Close()
		if !dropped {
			return
		}
	}
}

// Probing a peer whose connection was lost (probe).
const (
	probeAttempts = 3
	probeHold     = 100 * time.Millisecond
)

// droppedWithin reports whether the other end closes or resets conn
// within hold (of real time: the deadline is the kernel's).
func droppedWithin(conn net.Conn, hold time.Duration) bool {
	if err := conn.SetReadDeadline(time.Now().Add(hold)); err != nil {
		return false
	}
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// refused marks the peer gone and reports it when err is a refused dial
// and the peer is not connected meanwhile.
func (p *peer) refused(err error) {
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return
	}
	p.mu.Lock()
	if p.connected || p.gone || p.stopped {
		p.mu.Unlock()
		return
	}
	p.gone = true
	p.mu.Unlock()
	p.t.metrics.peersGone.Add(1)
	p.t.logger.Info("transport: peer gone (its address refused a connection)", "peer", p.id)
	p.t.reportGone(p.id)
	p.changedState()
}

// changedState tells Config.PeerChanged that the peer's state changed.
func (p *peer) changedState() {
	if f := p.t.cfg.PeerChanged; f != nil {
		f(p.id)
	}
}

// isConnected reports whether the peer's connection is up: connected,
// and not already closed by the peer in the kernel while the reader has
// yet to see it (a killed process's sockets close within milliseconds of
// each other, and a client may ask this node about the dead one before
// its reader runs).
func (p *peer) isConnected() bool {
	p.mu.Lock()
	connected, conn := p.connected, p.conn
	p.mu.Unlock()
	return connected && (conn == nil || !closedByPeer(conn))
}

// isGone reports whether the peer is marked gone (refused).
func (p *peer) isGone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gone
}

// stop ends run: it cancels the dial and closes the connection.
func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.conn != nil {
		p.conn.Close()
	}
	if p.next != nil {
		p.next.conn.Close()
		p.next = nil
	}
}

func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addr = addr
}

// state reports whether the peer is connected, and a channel closed at
// the next change.
func (p *peer) state() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected, p.changed
}

// connect returns the next connection, or nil once stopped. A dialler
// waits ReconnectDelayMin (jittered) before redialling after a lost
// connection, and doubles the pause after each failed attempt.
func (p *peer) connect(first bool) *link {
	if !p.dials {
		return p.awaitAccepted()
	}
	cfg := p.t.cfg
	var delay time.Duration
	if !first {
		var wait time.Duration
		delay, wait = reconnectDelay(0, cfg.ReconnectDelayMin, cfg.ReconnectDelayMax, p.t.random())
		if !p.t.pause(p.ctx, wait) {
			return nil
		}
	}
	for {
		l, err := p.dial()
		if err == nil {
			return l
		}
		if p.ctx.Err() != nil {
			return nil
		}
		p.refused(err)
		var wait time.Duration
		delay, wait = reconnectDelay(delay, cfg.ReconnectDelayMin, cfg.ReconnectDelayMax, p.t.random())
		p.t.logger.Debug("transport: connect failed", "peer", p.id, "err", err, "retry_in", wait)
		if !p.t.pause(p.ctx, wait) {
			return nil
		}
	}
}

// dial connects to the peer and exchanges handshakes.
func (p *peer) dial() (*link, error) {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout, KeepAliveConfig: keepAliveConfig(p.t.cfg)}
	tcpConn, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial node %d at %s: %w", p.id, addr, err)
	}
	conn := idleConn{Conn: clientTLS(tcpConn, p.t.cfg.TLS, addr), idle: p.t.cfg.ReadIdleTimeout}
	if !p.setConn(conn) {
		conn.Close()
		return nil, errStopped
	}
	stopWatchdog := p.t.watchdog(conn, p.t.cfg.HandshakeTimeout)
	l, err := p.handshake(conn, addr)
	if !stopWatchdog() && err == nil {
		err = fmt.Errorf("handshake with node %d at %s timed out", p.id, addr)
	}
	if err != nil {
		conn.Close()
		p.t.metrics.refused.Add(1)
		p.t.logger.Warn("transport: handshake failed", "peer", p.id, "addr", addr, "err", err)
		return nil, err
	}
	return l, nil
}

// handshake sends this node's handshake and checks the answer.
func (p *peer) handshake(conn net.Conn, addr string) (*link, error) {
	if _, err := conn.Write(p.t.hello); err != nil {
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	r := bufio.NewReader(conn)
	h, err := readHandshake(r)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("node %d at %s closed the connection at the handshake (it does not know this node): %w", p.id, addr, err)
	}
	if err != nil {
		return nil, err
	}
	if err := p.t.checkCluster(h); err != nil {
		return nil, err
	}
	if h.NodeID != p.id {
		return nil, fmt.Errorf("%s answers as node %d, not node %d", addr, h.NodeID, p.id)
	}
	return &link{conn: conn, r: r, hello: h}, nil
}

// setConn records the connection being set up, so that stop closes it;
// false when already stopped.
func (p *peer) setConn(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.conn = conn
	return true
}

// awaitAccepted waits for the accept loop to hand over a connection.
func (p *peer) awaitAccepted() *link {
	for {
		select {
		case <-p.linkReady:
			if l := p.takeNext(); l != nil {
				return l
			}
		case <-p.ctx.Done():
			return nil
		}
	}
}

// handoff gives the peer an accepted connection. The newest one wins: the
// dialler only dials when it has no connection, so an older one is dead
// on its side even when this side has not noticed yet.
func (p *peer) handoff(l *link) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		l.conn.Close()
		return
	}
	if p.next != nil {
		p.next.conn.Close()
	}
	p.next = l
	p.mu.Unlock()
	select {
	case p.linkReady <- struct{}{}:
	default:
	}
}

func (p *peer) takeNext() *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.next
	p.next = nil
	if l != nil {
		p.conn = l.conn
	}
	return l
}

// serve runs one connection until it breaks, the peer stops or a newer
// connection replaces it (returned).
func (p *peer) serve(l *link) *link {
	p.setConnected(true, l.conn)
	p.changedState()
	p.t.metrics.connections.Add(1)
	p.t.logger.Info("transport: connected", "peer", p.id, "incarnation", l.hello.Incarnation, "remote", l.conn.RemoteAddr())
	readerDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readerDone)
		readErr = p.readLoop(l)
	}()
	next, err := p.writeLoop(l, readerDone)
	l.conn.Close()
	<-readerDone
	p.mu.Lock()
	p.failPingLocked() // its pong can only come on this connection
	p.mu.Unlock()
	if err == nil {
		err = readErr
	}
	if next == nil {
		p.setConnected(false, nil)
		p.changedState()
	}
	p.logClosed(err)
	return next
}

// setConnected records the connection state; losing the connection drops
// the queue (reporting the peer unreachable when that lost anything).
func (p *peer) setConnected(connected bool, conn net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if connected {
		p.reported, p.gone = false, false
	} else if len(p.queue) > 0 {
		for _, it := range p.queue {
			p.t.dropped(it)
		}
		p.queue, p.queuedBytes = nil, 0
		p.reportLocked()
	}
	p.conn = conn
	if p.connected != connected {
		p.connected = connected
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// logClosed says why a connection ended; protocol errors are warnings.
func (p *peer) logClosed(err error) {
	switch {
	case errors.Is(err, errStopped):
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrMalformed), errors.Is(err, ErrVersion):
		p.t.metrics.protocolErrors.Add(1)
		p.t.logger.Warn("transport: closed the connection on a protocol error", "peer", p.id, "err", err)
	default:
		p.t.logger.Info("transport: connection closed", "peer", p.id, "err", err)
	}
}

// writeLoop writes the queue whenever it gets items, until the reader
// ends, the peer stops, a write fails or a newer connection arrives.
//
// When it has written nothing for a quarter of ReadIdleTimeout it writes
// a keepalive, so the peer's idle timeout fires only when the connection
// passes nothing.
func (p *peer) writeLoop(l *link, readerDone <-chan struct{}) (*link, error) {
	var buf []byte
	keepalive := p.t.env.Clock.NewTimer(p.t.cfg.ReadIdleTimeout / 4)
	defer keepalive.Stop()
	for {
		idle := false
		select {
		case <-p.ctx.Done():
			return nil, errStopped
		case <-readerDone:
			return nil, nil
		case <-p.linkReady:
			if next := p.takeNext(); next != nil {
				return next, errReplaced
			}
		case <-p.wake:
		case <-keepalive.C():
			idle = true
		}
		var err error
		if idle {
			err = p.writeFrame(l.conn, keepaliveFrame)
		} else {
			buf, err = p.writeQueued(l.conn, buf)
		}
		if err != nil {
			return nil, err
		}
		keepalive.Reset(p.t.cfg.ReadIdleTimeout / 4)
	}
}

// keepaliveFrame is a RaftBatch of no groups.
var keepaliveFrame = AppendFrame(nil, FrameRaftBatch, AppendRaftBatch(nil, nil))

// writeDeadline gives the next write on conn WriteTimeout (of real time:
// the deadline is the kernel's).
func (p *peer) writeDeadline(conn net.Conn) error {
	if err := conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout)); err != nil {
		return fmt.Errorf("write to node %d: %w", p.id, err)
	}
	return nil
}

// writeFrame writes one frame within WriteTimeout.
func (p *peer) writeFrame(conn net.Conn, frame []byte) error {
	if err := p.writeDeadline(conn); err != nil {
		return err
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("write to node %d: %w", p.id, err)
	}
	return nil
}

// writeQueued writes frames until the queue is empty: each frame holds as
// many queued items as fit, so everything queued during a write leaves in
// the next frame.
func (p *peer) writeQueued(conn net.Conn, buf []byte) ([]byte, error) {
	for {
		items := p.takeFrame()
		if len(items) == 0 {
			return buf, nil
		}
		var bufs net.Buffers
		var frameBytes int
		bufs, buf, frameBytes = frameVector(buf, items)
		if err := p.writeFrameVector(conn, bufs); err != nil {
			for _, it := range items {
				p.t.dropped(it)
			}
			return nil, err
		}
		p.sent(items, frameBytes)
		if cap(buf) > bufferBytesKeptMax {
			buf = nil
		}
	}
}

// writeFrameVector writes one frame laid out in pieces, as writeFrame
// does. On a TCP connection it is one writev; net.Buffers finds that only
// on the net package's own connection, so idleConn (which changes reads
// alone) is looked through. Over TLS the pieces are written in turn: a
// frame's small pieces are already gathered, so that is about two records
// per large entry.
func (p *peer) writeFrameVector(conn net.Conn, bufs net.Buffers) error {
	if ic, ok := conn.(idleConn); ok {
		conn = ic.Conn
	}
	if err := p.writeDeadline(conn); err != nil {
		return err
	}
	if _, err := bufs.WriteTo(conn); err != nil {
		return fmt.Errorf("write to node %d: %w", p.id, err)
	}
	return nil
}

// takeFrame removes from the queue the items of the next frame: the first
// item, and the Raft items after it while the frame stays within the
// bound (enqueue refused any item that fits no frame alone).
func (p *peer) takeFrame() []item {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	n := 1
	if p.queue[0].typ == FrameRaftBatch {
		size := p.queue[0].frameBytes()
		for n < len(p.queue) && p.queue[n].typ == FrameRaftBatch && size+p.queue[n].bytes <= p.t.cfg.FrameBytesMax {
			size += p.queue[n].bytes
			n++
		}
	}
	items := append([]item(nil), p.queue[:n]...)
	clear(p.queue[:n]) // the backing array must not pin sent messages
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	for _, it := range items {
		p.queuedBytes -= it.bytes
	}
	return items
}

// sent counts a written frame; the peer is reachable again.
func (p *peer) sent(items []item, frameBytes int) {
	m := &p.t.metrics
	m.framesSent.Add(1)
	m.bytesSent.Add(uint64(frameBytes))
	for _, it := range items {
		m.messagesSent.Add(uint64(len(it.messages)))
	}
	p.mu.Lock()
	p.reported = false
	p.mu.Unlock()
}

// enqueue queues it, or drops it when the peer is not connected or its
// queue is full.
func (p *peer) enqueue(it item) error {
	p.mu.Lock()
	var err error
	switch {
	case !p.connected:
		err = fmt.Errorf("%w: node %d", ErrNotConnected, p.id)
	case p.queuedBytes+it.bytes > p.t.cfg.PeerQueueBytesMax:
		err = fmt.Errorf("%w: node %d has %d bytes queued", ErrQueueFull, p.id, p.queuedBytes)
	default:
		p.queue = append(p.queue, it)
		p.queuedBytes += it.bytes
	}
	if err != nil {
		p.reportLocked()
	}
	p.mu.Unlock()
	if err != nil {
		p.t.dropped(it)
		return err
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// report reports the peer unreachable, once until a frame is written.
func (p *peer) report() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reportLocked()
}

// reportLocked is report with p.mu held. A report the full channel
// refused is not made: the next loss tries again.
func (p *peer) reportLocked() {
	if !p.reported {
		p.reported = p.t.report(p.id)
	}
}

// readLoop delivers the frames arriving on l until the connection breaks
// or a frame breaks the protocol.
func (p *peer) readLoop(l *link) error {
	var buf []byte
	for {
		typ, payload, err := ReadFrame(l.r, p.t.cfg.FrameBytesMax, buf)
		if err != nil {
			return fmt.Errorf("read from node %d: %w", p.id, err)
		}
		p.t.metrics.framesReceived.Add(1)
		p.t.metrics.bytesReceived.Add(uint64(frameHeaderBytes + len(payload)))
		if typ == FramePing || typ == FramePong {
			err = p.receivePing(typ, payload)
		} else {
			err = p.t.dispatch(p.id, typ, payload)
		}
		if err != nil {
			return fmt.Errorf("frame %v from node %d: %w", typ, p.id, err)
		}
		buf = payload[:0]
		if cap(buf) > bufferBytesKeptMax {
			buf = nil
		}
	}
}

// dispatch hands a frame to its handler.
func (t *TCP) dispatch(from uint64, typ FrameType, payload []byte) error {
	switch typ {
	case FrameRaftBatch:
		return t.deliverRaft(from, payload)
	case FrameHandshake:
		return fmt.Errorf("%w: a second handshake", ErrMalformed)
	}
	h := t.cfg.Handlers[typ]
	if h == nil {
		return fmt.Errorf("%w: no handler for frame type %v", ErrMalformed, typ)
	}
	h(from, payload)
	return nil
}

// deliverRaft decodes a whole RaftBatch before delivering any of it, so a
// malformed frame delivers nothing.
func (t *TCP) deliverRaft(from uint64, payload []byte) error {
	groups, err := ParseRaftBatch(payload)
	if err != nil {
		return err
	}
	msgs := make([][]*raftpb.Message, len(groups))
	for i, g := range groups {
		if msgs[i], err = UnmarshalMessages(g); err != nil {
			return err
		}
	}
	for i, g := range groups {
		ms := t.addressedFrom(from, msgs[i])
		if len(ms) == 0 {
			continue
		}
		t.metrics.messagesReceived.Add(uint64(len(ms)))
		t.cfg.Handler(from, g.Group, ms)
	}
	return nil
}

// addressedFrom keeps the messages sent by a replica of node from to a
// replica of this node, counting the others: a node speaks only for its
// own replicas, and a message for another node was routed wrong.
func (t *TCP) addressedFrom(from uint64, msgs []*raftpb.Message) []*raftpb.Message {
	kept := msgs[:0]
	for _, m := range msgs {
		if NodeOf(m.GetFrom()) != from || NodeOf(m.GetTo()) != t.cfg.NodeID {
			t.metrics.messagesMisaddressed.Add(1)
			continue
		}
		kept = append(kept, m)
	}
	return kept
}
