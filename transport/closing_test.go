package transport

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestClosedByPeer: a connection whose peer closed it is seen closed
// before anything reads it (on Linux, from the socket's TCP state); an
// open one is not.
func TestClosedByPeer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_INFO is Linux only")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if closedByPeer(idleConn{Conn: server, idle: time.Second}) {
		t.Fatal("an open connection is seen closed")
	}
	client.Close()
	deadline := time.Now().Add(waitMax)
	for !closedByPeer(idleConn{Conn: server, idle: time.Second}) {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close is never seen")
		}
		time.Sleep(time.Millisecond) // the FIN crosses loopback: polling the socket's state
	}
}
