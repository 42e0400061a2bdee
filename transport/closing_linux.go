package transport

import (
	"crypto/tls"
	"net"

	"golang.org/x/sys/unix"
)

// TCP states of Linux's tcp_states.h: the peer has closed (or reset) its
// end of a connection this side has not closed yet.
const (
	tcpStateClose     = 7
	tcpStateCloseWait = 8
)

// closedByPeer reports whether the kernel already holds the peer's end of
// conn (a FIN or a reset received) that this side's reader has not read
// yet. It asks the socket without reading, so it never competes with the
// reader goroutine.
func closedByPeer(conn net.Conn) bool {
	if ic, ok := conn.(idleConn); ok {
		conn = ic.Conn
	}
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	var state uint8
	if err := raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			state = info.State
		}
	}); err != nil {
		return false
	}
	return state == tcpStateCloseWait || state == tcpStateClose
}
