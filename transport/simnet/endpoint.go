package simnet

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/transport"
)

// unreachableReportsMax bounds the reports queued on Unreachable, as
// transport.Config.UnreachableReportsMax does for TCP.
const unreachableReportsMax = 1024

// Endpoint is one node's side of the network, with what a cluster node
// needs of transport.TCP (cluster.Transport).
type Endpoint struct {
	net         *Network
	id          uint64
	cfg         transport.Config
	unreachable chan uint64
	gone        chan uint64

	framesSent, bytesSent, messagesSent             atomic.Uint64
	messagesDropped, bytesDropped, framesDropped    atomic.Uint64
	framesReceived, bytesReceived, messagesReceived atomic.Uint64
	messagesMisaddressed, protocolErrors            atomic.Uint64

	// receiving is held while a handler runs, so that Close returns only
	// once none does (TCP's Close joins its readers alike).
	receiving sync.Mutex
	// joins counts the join handlers running (Network.Join), which Close
	// waits for; not under receiving, lest a handler waiting for the
	// metadata leader hold up the deliveries it waits for.
	joins sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	peers    map[uint64]bool
	reported map[uint64]bool // peers reported unreachable since a frame last reached them
}

// Open attaches node cfg.NodeID to the network with cfg's handlers
// (cfg.ListenAddr and the TCP limits are not used). One endpoint per node
// is open at a time: a node reopens after closing its previous one.
func (n *Network) Open(cfg transport.Config) (*Endpoint, error) {
	if cfg.NodeID == 0 || cfg.Handler == nil {
		return nil, fmt.Errorf("simnet: node id %d and a Raft handler are required", cfg.NodeID)
	}
	e := &Endpoint{net: n, id: cfg.NodeID, cfg: cfg, unreachable: make(chan uint64, unreachableReportsMax),
		gone: make(chan uint64, unreachableReportsMax), peers: map[uint64]bool{}, reported: map[uint64]bool{}}
	if err := n.attach(e); err != nil {
		return nil, err
	}
	return e, nil
}

// AddPeer makes node id a peer (its address is not used: nodes are found by
// id). Frames to nodes not added are dropped.
func (e *Endpoint) AddPeer(id uint64, _ string) error {
	if id == 0 || id == e.id {
		return fmt.Errorf("simnet: cannot add node %d as a peer of node %d", id, e.id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.peers[id] = true
	return nil
}

// Send puts msgs of group for node to on the wire as one frame and returns
// at once; what cannot be sent is dropped and reported on Unreachable.
func (e *Endpoint) Send(to uint64, group uint64, msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	f := &flight{from: e, typ: transport.FrameRaftBatch, group: group, msgs: make([][]byte, len(msgs))}
	for i, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil { // a message raft built always marshals: a programming error
			panic(fmt.Sprintf("simnet: marshal a raft message of group %d: %v", group, err))
		}
		f.msgs[i] = b
	}
	_ = e.post(to, f)
}

// SendFrame puts a frame of type typ (not RaftBatch or Handshake) for node
// to on the wire; an error when it is dropped instead.
func (e *Endpoint) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	if typ == transport.FrameRaftBatch || typ == transport.FrameHandshake {
		return fmt.Errorf("simnet: frame type %v is sent by the transport itself", typ)
	}
	return e.post(to, &flight{from: e, typ: typ, payload: bytes.Clone(payload)})
}

// post counts f and hands it to the network, or drops it when to is no
// peer or not open.
func (e *Endpoint) post(to uint64, f *flight) error {
	e.mu.Lock()
	closed, known := e.closed, e.peers[to]
	e.mu.Unlock()
	var err error
	switch {
	case closed:
		err = ErrClosed
	case !known:
		err = transport.ErrPeerUnknown
	case !e.net.post(to, f):
		err = transport.ErrNotConnected
	}
	if err != nil {
		e.lost(to, f)
		return err
	}
	e.framesSent.Add(1)
	e.bytesSent.Add(uint64(f.bytes()))
	e.messagesSent.Add(uint64(len(f.msgs)))
	return nil
}

// lost counts f as dropped and reports its receiver unreachable, once
// until a frame reaches it.
func (e *Endpoint) lost(to uint64, f *flight) {
	if f.typ == transport.FrameRaftBatch {
		e.messagesDropped.Add(uint64(len(f.msgs)))
	} else {
		e.framesDropped.Add(1)
	}
	e.bytesDropped.Add(uint64(f.bytes()))
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || (e.reported[to] && e.peers[to]) {
		return
	}
	e.reported[to] = true
	select {
	case e.unreachable <- to:
	default: // made again at the next loss once read
		e.reported[to] = false
	}
}

// reached notes that a frame reached node to: its next loss is reported.
func (e *Endpoint) reached(to uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.reported, to)
}

// receive runs the handler of f's type, as TCP's reader does for a frame.
func (e *Endpoint) receive(f *flight) {
	e.receiving.Lock()
	defer e.receiving.Unlock()
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return
	}
	from := f.from.id
	e.framesReceived.Add(1)
	e.bytesReceived.Add(uint64(f.bytes()))
	if f.typ != transport.FrameRaftBatch {
		h := e.cfg.Handlers[f.typ]
		if h == nil {
			e.protocolErrors.Add(1)
			return
		}
		h(from, bytes.Clone(f.payload)) // the handler may keep it no longer than the call, and not change it for a duplicate
		return
	}
	msgs := make([]*raftpb.Message, 0, len(f.msgs))
	for _, b := range f.msgs {
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b, m); err != nil { // marshalled by Send: a programming error
			panic(fmt.Sprintf("simnet: unmarshal a raft message from node %d: %v", from, err))
		}
		if transport.NodeOf(m.GetFrom()) != from || transport.NodeOf(m.GetTo()) != e.id {
			e.messagesMisaddressed.Add(1)
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs) > 0 {
		e.messagesReceived.Add(uint64(len(msgs)))
		e.cfg.Handler(from, f.group, msgs)
	}
}

// Unreachable reports the node id of a peer a frame to which was lost.
// Never closed.
func (e *Endpoint) Unreachable() <-chan uint64 { return e.unreachable }

// Metrics returns the counters so far, in TCP's terms (no connections).
func (e *Endpoint) Metrics() transport.Metrics {
	return transport.Metrics{
		FramesSent: e.framesSent.Load(), BytesSent: e.bytesSent.Load(), MessagesSent: e.messagesSent.Load(),
		MessagesDropped: e.messagesDropped.Load(), BytesDropped: e.bytesDropped.Load(), FramesDropped: e.framesDropped.Load(),
		FramesReceived: e.framesReceived.Load(), BytesReceived: e.bytesReceived.Load(), MessagesReceived: e.messagesReceived.Load(),
		MessagesMisaddressed: e.messagesMisaddressed.Load(), ProtocolErrors: e.protocolErrors.Load(),
	}
}

// Gone reports each peer whose node closed its endpoint (its process
// ended), as transport.TCP reports a peer whose address refuses dials.
func (e *Endpoint) Gone() <-chan uint64 { return e.gone }

// PeerGone reports whether peer id's node has no open endpoint: closed,
// and not yet reopened.
func (e *Endpoint) PeerGone(id uint64) bool {
	e.mu.Lock()
	peer := e.peers[id]
	e.mu.Unlock()
	return peer && !e.net.open(id)
}

// Ping answers at once when peer id is connected (PeerConnected), as a
// pong over an idle loopback link would; it fails at once when peer id's
// node is closed, as TCP's does on a connection found closed, and waits
// timeout on the env's clock before failing when a link between them is
// cut or either node is paused, as TCP's does behind a black hole or to a
// stopped process.
func (e *Endpoint) Ping(id uint64, timeout time.Duration) error {
	e.mu.Lock()
	peer, closed := e.peers[id], e.closed
	e.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !peer:
		return fmt.Errorf("%w: node %d", transport.ErrPeerUnknown, id)
	case !e.net.open(id):
		return fmt.Errorf("%w: node %d", transport.ErrNotConnected, id)
	case e.PeerConnected(id):
		return nil
	}
	timer := e.net.clock.NewTimer(timeout)
	defer timer.Stop()
	<-timer.C()
	return fmt.Errorf("%w: node %d, %v", transport.ErrPingTimeout, id, timeout)
}

// PeerConnected reports whether peer id's node is open, linked to this
// one both ways and neither is paused, as a TCP connection that is up and
// answers.
func (e *Endpoint) PeerConnected(id uint64) bool {
	e.mu.Lock()
	peer := e.peers[id]
	e.mu.Unlock()
	return peer && e.net.open(id) && e.net.Linked(e.id, id) && e.net.Linked(id, e.id) && !e.net.Paused(id) && !e.net.Paused(e.id)
}

// peerChanged tells this endpoint that node id opened or closed: Gone
// hears of a close, and Config.PeerChanged of both.
func (e *Endpoint) peerChanged(id uint64, closed bool) {
	e.mu.Lock()
	peer, open := e.peers[id], !e.closed
	e.mu.Unlock()
	if !peer || !open {
		return
	}
	if closed {
		select {
		case e.gone <- id:
		default: // full: PeerGone still answers
		}
	}
	if f := e.cfg.PeerChanged; f != nil {
		f(id)
	}
}

// Close detaches the endpoint: frames in flight to or from it are lost,
// and it sends nothing more. It returns once no handler of it runs, so it
// must not be called from one.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.net.detach(e)
	e.joins.Wait()
	e.receiving.Lock()
	defer e.receiving.Unlock()
	return nil
}

// Join is transport.Join over the network (a transport.Joiner): node
// nodeID, which need not have an endpoint yet, asks the node whose
// endpoint listens at addr (transport.Config.ListenAddr) to add it, and
// gets that node's handshake (its cluster id, node id, incarnation) and
// its JoinHandler's answer. The exchange fails at once, as a refused
// dial, when no open endpoint listens at addr, when either way between
// the two is cut or either is paused, or when the member serves no joins
// or answers nothing; the handler runs on its own goroutine (it may wait
// for the metadata leader), and ctx ending stops the wait for it.
func (n *Network) Join(ctx context.Context, addr string, nodeID uint64, request []byte) (transport.Handshake, []byte, error) {
	n.mu.Lock()
	var member *Endpoint
	for _, e := range n.endpoints {
		if e.cfg.ListenAddr == addr {
			member = e
		}
	}
	reachable := member != nil && !n.closed && !n.paused[nodeID] && !n.paused[member.id] &&
		!n.cut[link{nodeID, member.id}] && !n.cut[link{member.id, nodeID}]
	n.mu.Unlock()
	if !reachable {
		return transport.Handshake{}, nil, fmt.Errorf("simnet: join through %s: %w", addr, ErrUnreachable)
	}
	hello := transport.Handshake{ClusterID: member.cfg.ClusterID, NodeID: member.id, Incarnation: member.cfg.Incarnation}
	if member.cfg.JoinHandler == nil {
		return hello, nil, fmt.Errorf("%w by %s (node %d): serves no joins", transport.ErrJoinRefused, addr, member.id)
	}
	member.mu.Lock()
	if member.closed {
		member.mu.Unlock()
		return hello, nil, fmt.Errorf("simnet: join through %s: %w", addr, ErrUnreachable)
	}
	member.joins.Add(1) // the member's Close waits for it, as for a frame's handler
	member.mu.Unlock()
	answered := make(chan []byte, 1)
	go func() {
		defer member.joins.Done()
		answered <- member.cfg.JoinHandler(nodeID, bytes.Clone(request))
	}()
	select {
	case answer := <-answered:
		if answer == nil {
			return hello, nil, fmt.Errorf("%w by %s (node %d): closed unanswered", transport.ErrJoinRefused, addr, member.id)
		}
		return hello, answer, nil
	case <-ctx.Done():
		return hello, nil, fmt.Errorf("simnet: join through %s: %w", addr, ctx.Err())
	}
}
