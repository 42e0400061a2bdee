package transport

import "sync/atomic"

// Metrics are the transport's counters since it started, for a metrics
// collector to read (Prometheus counters: they only grow).
type Metrics struct {
	FramesSent       uint64 // frames written to peers
	BytesSent        uint64 // their bytes, headers included
	MessagesSent     uint64 // Raft messages in them
	MessagesDropped  uint64 // Raft messages dropped: peer unknown, not connected, queue full, too large, connection lost
	BytesDropped     uint64 // encoded bytes of everything dropped (Raft messages and other frames)
	FramesDropped    uint64 // frames of other types dropped
	FramesReceived   uint64
	BytesReceived    uint64
	MessagesReceived uint64
	// MessagesMisaddressed are Raft messages received and dropped: their
	// sender is not a replica of the node that sent them, or they are not
	// for a replica of this node.
	MessagesMisaddressed uint64
	Connections          uint64 // connections that completed the handshake
	Refused              uint64 // connections refused or dropped at the handshake
	ProtocolErrors       uint64 // connections closed for a frame too large, malformed or unexpected
	PeersGone            uint64 // peers found gone: a lost connection, then a refused dial (TCP.Gone)
}

// counters is Metrics, updated concurrently.
type counters struct {
	framesSent, bytesSent, messagesSent             atomic.Uint64
	messagesDropped, bytesDropped, framesDropped    atomic.Uint64
	framesReceived, bytesReceived, messagesReceived atomic.Uint64
	messagesMisaddressed                            atomic.Uint64
	connections, refused, protocolErrors            atomic.Uint64
	peersGone                                       atomic.Uint64
}

func (c *counters) snapshot() Metrics {
	return Metrics{
		FramesSent: c.framesSent.Load(), BytesSent: c.bytesSent.Load(), MessagesSent: c.messagesSent.Load(),
		MessagesDropped: c.messagesDropped.Load(), BytesDropped: c.bytesDropped.Load(), FramesDropped: c.framesDropped.Load(),
		FramesReceived: c.framesReceived.Load(), BytesReceived: c.bytesReceived.Load(), MessagesReceived: c.messagesReceived.Load(),
		MessagesMisaddressed: c.messagesMisaddressed.Load(),
		Connections:          c.connections.Load(), Refused: c.refused.Load(), ProtocolErrors: c.protocolErrors.Load(),
		PeersGone: c.peersGone.Load(),
	}
}

// PeerStatus is one peer as the transport sees it, for status pages and
// gauges.
type PeerStatus struct {
	ID          uint64
	Addr        string // dialled when this node's id is the lower
	Connected   bool
	QueuedBytes int // waiting for the writer, at most PeerQueueBytesMax
}

// Peers returns the status of every peer, in no particular order.
func (t *TCP) Peers() []PeerStatus {
	t.mu.RLock()
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.RUnlock()
	out := make([]PeerStatus, len(peers))
	for i, p := range peers {
		out[i] = p.status()
	}
	return out
}

func (p *peer) status() PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PeerStatus{ID: p.id, Addr: p.addr, Connected: p.connected, QueuedBytes: p.queuedBytes}
}
