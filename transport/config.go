package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Handler receives the Raft messages of one group sent by node from, in
// the order they were sent. It runs on the goroutine reading from that
// node, so it must hand the messages over and return quickly: while it
// runs, nothing more is read from that node.
type Handler func(from uint64, group uint64, msgs []*raftpb.Message)

// FrameHandler receives the payload of a frame of a type other than
// RaftBatch and Handshake. The payload is valid only during the call (the
// read buffer is reused); the same rules as for Handler apply.
type FrameHandler func(from uint64, payload []byte)

// Config configures a TCP transport. Zero durations and sizes take the
// defaults named beside them.
type Config struct {
	ClusterID   string // both sides of a connection must agree on it
	NodeID      uint64 // this node, at least 1
	Incarnation uint64 // sent in the handshake (design §5.4)
	// ListenAddr is the node's Raft address, host:port (127.0.0.1:0 in
	// tests: see TCP.Addr).
	ListenAddr string
	// Handler receives inbound Raft messages. Required.
	Handler Handler
	// Handlers receive the other frame types, one handler each. A frame
	// of a type without a handler closes the connection as a protocol
	// error.
	Handlers map[FrameType]FrameHandler
	// JoinHandler, when set, serves the join connections of nodes this
	// one does not know (join.go); without it they are refused.
	JoinHandler JoinHandler
	// PeerChanged, when set, is called after a peer connects, loses its
	// connection or is found gone (see TCP.Gone), on that peer's
	// goroutine with no lock of the transport held; it must return
	// quickly. PeerConnected and PeerGone then tell the new state.
	PeerChanged func(id uint64)
	// TLS, when set, runs every connection over TLS with it, dialled and
	// accepted: a server side for accepted ones, a client side (its
	// ServerName set to the dialled host) for dialled ones. Between nodes
	// it is mutual: see tlsconf.Node.Peer.
	TLS *tls.Config

	FrameBytesMax         int           // bound on a frame's length, read and written; FrameBytesMaxDefault
	PeerQueueBytesMax     int           // bytes queued per peer before Send drops; 64 MiB
	HandshakeTimeout      time.Duration // from connect to both handshakes exchanged; 5 s
	DialTimeout           time.Duration // one connection attempt; 2 s
	ReconnectDelayMin     time.Duration // first pause after a failed attempt; 50 ms
	ReconnectDelayMax     time.Duration // the pause doubles up to this; 2 s
	HandshakesPendingMax  int           // inbound connections handshaking at once; 64
	UnreachableReportsMax int           // reports buffered in Unreachable(); 1024
	// ReadIdleTimeout closes a connection on which nothing arrived for
	// that long (a stuck peer, a half-open connection, a black hole), and
	// the dialler redials; each side writes a keepalive after a quarter of
	// it without other frames. Also the TCP keepalive idle time. 5 s.
	ReadIdleTimeout time.Duration
	// WriteTimeout bounds the write of one frame (up to FrameBytesMax);
	// a write that does not finish in time closes the connection. 10 s.
	WriteTimeout time.Duration
}

const (
	frameBytesMaxMin            = 64 << 10 // room for a handshake and a few messages
	frameBytesMaxLimit          = 1 << 30
	peerQueueBytesMaxDefault    = 64 << 20
	handshakeTimeoutDefault     = 5 * time.Second
	dialTimeoutDefault          = 2 * time.Second
	reconnectDelayMinDefault    = 50 * time.Millisecond
	reconnectDelayMaxDefault    = 2 * time.Second
	handshakesPendingMaxDefault = 64
	unreachableReportsDefault   = 1024
	readIdleTimeoutDefault      = 5 * time.Second
	writeTimeoutDefault         = 10 * time.Second
)

// withDefaults fills the unset limits.
func (c Config) withDefaults() Config {
	setDefault(&c.FrameBytesMax, FrameBytesMaxDefault)
	setDefault(&c.PeerQueueBytesMax, peerQueueBytesMaxDefault)
	setDefault(&c.HandshakeTimeout, handshakeTimeoutDefault)
	setDefault(&c.DialTimeout, dialTimeoutDefault)
	setDefault(&c.ReconnectDelayMin, reconnectDelayMinDefault)
	setDefault(&c.ReconnectDelayMax, reconnectDelayMaxDefault)
	setDefault(&c.HandshakesPendingMax, handshakesPendingMaxDefault)
	setDefault(&c.UnreachableReportsMax, unreachableReportsDefault)
	setDefault(&c.ReadIdleTimeout, readIdleTimeoutDefault)
	setDefault(&c.WriteTimeout, writeTimeoutDefault)
	return c
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Validate reports the first invalid field of a configuration with its
// defaults filled in.
func (c Config) Validate() error {
	switch {
	case c.ClusterID == "":
		return errors.New("transport: no cluster id")
	case len(c.ClusterID) > clusterIDBytesMax:
		return fmt.Errorf("transport: cluster id of %d bytes, at most %d", len(c.ClusterID), clusterIDBytesMax)
	case c.NodeID == 0:
		return errors.New("transport: node id 0")
	case c.ListenAddr == "":
		return errors.New("transport: no listen address")
	case c.Handler == nil:
		return errors.New("transport: no handler for Raft messages")
	case c.FrameBytesMax < frameBytesMaxMin || c.FrameBytesMax > frameBytesMaxLimit:
		return fmt.Errorf("transport: frame bound %d outside [%d, %d]", c.FrameBytesMax, frameBytesMaxMin, frameBytesMaxLimit)
	case c.PeerQueueBytesMax < c.FrameBytesMax:
		return fmt.Errorf("transport: peer queue of %d bytes cannot hold a frame of %d", c.PeerQueueBytesMax, c.FrameBytesMax)
	case c.HandshakeTimeout < 0 || c.DialTimeout < 0 || c.ReadIdleTimeout < 0 || c.WriteTimeout < 0:
		return errors.New("transport: negative timeout")
	case c.ReconnectDelayMin < 0 || c.ReconnectDelayMax < c.ReconnectDelayMin:
		return fmt.Errorf("transport: reconnect delays %v..%v", c.ReconnectDelayMin, c.ReconnectDelayMax)
	case c.HandshakesPendingMax < 0 || c.UnreachableReportsMax < 0:
		return errors.New("transport: negative bound")
	}
	for t := range c.Handlers {
		if t == FrameRaftBatch || t == FrameHandshake || t == FramePing || t == FramePong {
			return fmt.Errorf("transport: frame type %v is handled by the transport itself", t)
		}
		if c.Handlers[t] == nil {
			return fmt.Errorf("transport: nil handler for frame type %v", t)
		}
	}
	return nil
}

// reconnectDelay is the pause before the next connection attempt after
// one that failed with delay prev (0 for the first): doubled, within
// [lo, hi], then jittered down by up to a half with random so that
// nodes that lost each other at once do not retry in step.
func reconnectDelay(prev, lo, hi time.Duration, random uint64) (next, wait time.Duration) {
	next = lo
	if prev > 0 {
		next = prev * 2
	}
	if next > hi || next < prev { // next < prev: overflow
		next = hi
	}
	if next < lo {
		next = lo
	}
	half := next / 2
	if half <= 0 {
		return next, next
	}
	return next, next - time.Duration(random%uint64(half+1))
}
