//go:build !linux

package transport

import "net"

// closedByPeer is Linux only (TCP_INFO); elsewhere a connection counts as
// open until its reader sees the end.
func closedByPeer(net.Conn) bool { return false }
