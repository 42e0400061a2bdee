package transport

import (
	"testing"
	"time"
)

// waitGone waits for the next Gone report of n, which must name peer.
func (n *node) waitGone(t *testing.T, peer uint64) {
	t.Helper()
	select {
	case id := <-n.Gone():
		if id != peer {
			t.Fatalf("node %d reported node %d gone, want %d", n.cfg.NodeID, id, peer)
		}
	case <-time.After(waitMax):
		t.Fatalf("node %d reported nothing gone; metrics %+v", n.cfg.NodeID, n.Metrics())
	}
	if !n.PeerGone(peer) {
		t.Fatalf("node %d reported node %d gone, but PeerGone is false", n.cfg.NodeID, peer)
	}
}

// TestClosedPeerReportedGone: when a node's transport closes (its listener
// with it, as when its process ends), the node dialling it and the node it
// dialled both find its address refusing connections and report it gone
// once; once it is back and connected, it is no longer gone.
func TestClosedPeerReportedGone(t *testing.T) {
	a, b, c := startNode(t, 1, "", nil), startNode(t, 2, "", nil), startNode(t, 3, "", nil)
	connect(t, a, b, c)
	addrB := b.Addr().String()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a.waitGone(t, 2) // a dials b: its probe is refused, and so are its redials
	c.waitGone(t, 2) // c accepts from b: only its probe tells
	if m := a.Metrics(); m.PeersGone != 1 {
		t.Fatalf("node 1 counted %d peers gone, want 1 (reported once)", m.PeersGone)
	}

	b = startNode(t, 2, addrB, nil)
	connect(t, a, b, c)
	for _, n := range []*node{a, c} {
		if n.PeerGone(2) {
			t.Fatalf("node %d still takes node 2 for gone after it reconnected", n.cfg.NodeID)
		}
	}
}

// TestBrokenConnectionIsNotGone: a connection that breaks between two
// live nodes (a reset, a flapping link) is redialled; neither side
// reports the other gone, since the other still listens.
func TestBrokenConnectionIsNotGone(t *testing.T) {
	a, b := startNode(t, 1, "", nil), startNode(t, 2, "", nil)
	connect(t, a, b)
	for round := range 3 {
		p := a.peer(2)
		p.mu.Lock()
		conn := p.conn
		p.mu.Unlock()
		conn.Close()
		waitDisconnected(t, a, 2)
		connect(t, a, b)
		exchange(t, a, b, uint64(round+1))
	}
	for _, n := range []*node{a, b} {
		select {
		case id := <-n.Gone():
			t.Fatalf("node %d reported live node %d gone", n.cfg.NodeID, id)
		default:
		}
		if m := n.Metrics(); m.PeersGone != 0 {
			t.Fatalf("node %d counted %d peers gone, want 0", n.cfg.NodeID, m.PeersGone)
		}
	}
}
