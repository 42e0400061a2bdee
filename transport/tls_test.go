package transport

import (
	"crypto/tls"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/internal/testcerts"
	"github.com/cairnlog/cairn/tlsconf"
)

// peerTLS is a node's mutual TLS configuration with a certificate of ca.
func peerTLS(t *testing.T, ca *testcerts.CA, dir, name string) *tls.Config {
	t.Helper()
	leaf := ca.Issue(t, dir, name, testcerts.Options{Server: true})
	n, err := tlsconf.Load(tlsconf.Files{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile, ClientCAFile: ca.CertFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := n.Peer()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestTLSBetweenNodes: two nodes with certificates of the same CA connect
// and exchange messages over mutual TLS; a node whose certificate another
// CA signed is refused by both ends' checks and never connects.
func TestTLSBetweenNodes(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "cluster")
	a := startNode(t, 1, "", func(c *Config) { c.TLS = peerTLS(t, ca, dir, "n1") })
	b := startNode(t, 2, "", func(c *Config) { c.TLS = peerTLS(t, ca, dir, "n2") })
	connect(t, a, b)
	a.Send(2, 7, []*raftpb.Message{heartbeat(rid(1), rid(2), 3)})
	if d := b.receive(t); d.from != 1 || d.group != 7 {
		t.Fatalf("delivery %+v", d)
	}
	b.Send(1, 7, []*raftpb.Message{heartbeat(rid(2), rid(1), 4)})
	if d := a.receive(t); d.from != 2 || d.group != 7 {
		t.Fatalf("delivery %+v", d)
	}

	other := testcerts.NewCA(t, dir, "other")
	c := startNode(t, 3, "", func(c *Config) { c.TLS = peerTLS(t, other, dir, "n3") })
	if err := a.AddPeer(3, c.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := c.AddPeer(1, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	a.logs.wait(t, "handshake failed", "peer=3", "certificate")
	if a.PeerConnected(3) || c.PeerConnected(1) {
		t.Fatal("a node with another CA's certificate connected")
	}
	// A plain TCP node cannot talk to a TLS one either.
	d := startNode(t, 4, "", nil)
	if err := d.AddPeer(1, a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := a.AddPeer(4, d.Addr().String()); err != nil {
		t.Fatal(err)
	}
	a.logs.wait(t, "handshake failed", "peer=4")
	if a.PeerConnected(4) {
		t.Fatal("a node without TLS connected")
	}
}
