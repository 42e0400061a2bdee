package transport

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/internal/faultproxy"
)

// TestThroughFaultProxy runs two transports through a fault proxy: what a
// blackhole holds arrives once it heals, and after connections are reset
// (and refused while the reset lasts) the dialler reconnects.
func TestThroughFaultProxy(t *testing.T) {
	a, b := startNode(t, 1, "", nil), startNode(t, 2, "", nil)
	proxy := connectThroughProxy(t, a, b)
	exchange(t, a, b, 1)

	proxy.Set(faultproxy.ToTarget, faultproxy.Fault{Kind: faultproxy.Blackhole})
	a.Send(2, 7, []*raftpb.Message{heartbeat(rid(1), rid(2), 2)})
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := proxy.WaitHeld(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-b.inbox:
		t.Fatalf("delivered through a blackhole: %+v", d)
	default:
	}
	proxy.Set(faultproxy.ToTarget, faultproxy.Fault{Kind: faultproxy.Pass})
	if d := b.receive(t); d.msgs[0].GetTerm() != 2 {
		t.Fatalf("after healing: %+v", d)
	}

	proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Reset})
	waitDisconnected(t, a, 2)
	waitDisconnected(t, b, 1)
	proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
	waitConnected(t, a, 2)
	waitConnected(t, b, 1)
	exchange(t, a, b, 3)
}

// TestBlackholeBothWaysRedials: a connection through which nothing passes
// either way (a stuck peer, a half-open connection) is closed by both
// sides once a frame is ReadIdleTimeout overdue, and redialled; an idle
// connection that does pass stays up, kept alive by the transport.
func TestBlackholeBothWaysRedials(t *testing.T) {
	const idle = 300 * time.Millisecond
	short := func(c *Config) { c.ReadIdleTimeout, c.HandshakeTimeout = idle, idle }
	a, b := startNode(t, 1, "", short), startNode(t, 2, "", short)
	proxy := connectThroughProxy(t, a, b)
	time.Sleep(4 * idle) // idle, yet kept alive: the time must pass
	if m := a.Metrics(); m.Connections != 1 {
		t.Fatalf("%d connections after an idle spell, want the first one still", m.Connections)
	}
	exchange(t, a, b, 1)

	proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
	waitDisconnected(t, a, 2)
	waitDisconnected(t, b, 1)
	proxy.SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
	waitConnected(t, a, 2)
	waitConnected(t, b, 1)
	exchange(t, a, b, 2)
}

// connectThroughProxy connects node 1 (a, which dials) to node 2 (b)
// through a fault proxy in front of b, and returns the proxy, closed when
// the test ends.
func connectThroughProxy(t *testing.T, a, b *node) *faultproxy.Proxy {
	t.Helper()
	proxy, err := faultproxy.New(faultproxy.Config{Target: b.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	if err := a.AddPeer(2, proxy.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPeer(1, "unused: node 1 dials"); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, a, 2)
	waitConnected(t, b, 1)
	return proxy
}
