package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// JoinHandler serves a NodeJoin frame that came on a join connection: a
// node that knows no member of the cluster yet (not even its id) asks
// this one to add it. It returns the NodeJoinResult payload, or nil to
// close the connection unanswered. It runs on the connection's own
// goroutine and may block for as long as the join takes; it must bound
// that itself.
type JoinHandler func(from uint64, payload []byte) []byte

// joinRequestBytesMax bounds a NodeJoin frame on a join connection.
const joinRequestBytesMax = 4 << 10

// A join's handler may run for as long as the join takes (seconds), so a
// join connection gives back its handshake slot (HandshakesPendingMax)
// before its handler runs, lest slow joins keep peers from reconnecting;
// joins are bounded on their own: at most joinsMax at once, and
// joinsPerSourceMax from one source host, since anyone can dial one.
const (
	joinsMax          = 16
	joinsPerSourceMax = 2
)

// admitJoin moves conn from the handshaking connections to the joins
// being served, unless the transport is closed or a bound is reached;
// release forgets it.
func (t *TCP) admitJoin(conn net.Conn) (release func(), ok bool) {
	source := sourceHost(conn)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, conn)
	fromSource := 0
	for _, s := range t.joining {
		if s == source {
			fromSource++
		}
	}
	if t.closed || len(t.joining) >= joinsMax || fromSource >= joinsPerSourceMax {
		return nil, false
	}
	t.joining[conn] = source
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.joining, conn)
	}, true
}

// sourceHost is the host a connection comes from, without its port.
func sourceHost(conn net.Conn) string {
	addr := conn.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// ErrJoinRefused: the node asked closed the join connection unanswered.
var ErrJoinRefused = errors.New("transport: join refused")

// isJoin reports whether a dialler's handshake opens a join connection:
// it names no cluster (it does not know one yet), and this node serves
// joins. Such a connection carries one NodeJoin and its answer, and is
// never a peer's.
func (t *TCP) isJoin(h Handshake) bool {
	return h.ClusterID == "" && t.cfg.ClusterID != "" && t.cfg.JoinHandler != nil
}

// serveJoin answers a join connection's handshake with this node's (so
// the joiner learns the cluster and who answered), reads its NodeJoin
// within the handshake timeout, and writes the handler's answer.
func (t *TCP) serveJoin(conn net.Conn, r *bufio.Reader, h Handshake, stopWatchdog func() bool) {
	defer conn.Close()
	if _, err := conn.Write(t.hello); err != nil {
		t.logger.Warn("transport: join connection", "node", h.NodeID, "err", err)
		return
	}
	typ, payload, err := ReadFrame(r, joinRequestBytesMax, nil)
	if err == nil && typ != FrameNodeJoin {
		err = fmt.Errorf("%w: frame %v on a join connection", ErrMalformed, typ)
	}
	if !stopWatchdog() || err != nil {
		t.logger.Warn("transport: join connection", "node", h.NodeID, "err", err)
		return
	}
	release, ok := t.admitJoin(conn)
	if !ok {
		t.metrics.refused.Add(1)
		t.logger.Warn("transport: refused a join connection", "node", h.NodeID, "remote", conn.RemoteAddr(), "joins_max", joinsMax, "per_source_max", joinsPerSourceMax)
		return
	}
	defer release()
	answer := t.cfg.JoinHandler(h.NodeID, payload)
	if answer == nil {
		return
	}
	if err := conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
		return
	}
	if _, err := conn.Write(AppendFrame(nil, FrameNodeJoinResult, answer)); err != nil {
		t.logger.Warn("transport: join connection", "node", h.NodeID, "err", err)
	}
}

// Joiner runs a join's exchange with the member at addr: Join over TCP,
// or a simulated network's (simnet.Network.Join).
type Joiner func(ctx context.Context, addr string, nodeID uint64, request []byte) (Handshake, []byte, error)

// TCPJoiner is Join with tlsCfg, as a Joiner.
func TCPJoiner(tlsCfg *tls.Config) Joiner {
	return func(ctx context.Context, addr string, nodeID uint64, request []byte) (Handshake, []byte, error) {
		return Join(ctx, addr, nodeID, request, tlsCfg)
	}
}

// Join dials addr, a member's Raft address, and asks it to add node
// nodeID with the NodeJoin payload request; it returns the member's
// handshake (its cluster id and node id) and the NodeJoinResult payload.
// ctx bounds the whole exchange. With tlsCfg the connection runs over
// TLS, as the member's transport expects when its Config.TLS is set.
func Join(ctx context.Context, addr string, nodeID uint64, request []byte, tlsCfg *tls.Config) (Handshake, []byte, error) {
	hello, err := EncodeHandshake(Handshake{Version: protocolVersion, NodeID: nodeID})
	if err != nil {
		return Handshake{}, nil, err
	}
	var d net.Dialer
	tcpConn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Handshake{}, nil, fmt.Errorf("transport: join through %s: %w", addr, err)
	}
	conn := clientTLS(tcpConn, tlsCfg, addr)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // the exchange ends with ctx
	defer stop()
	msg := AppendFrame(AppendFrame(nil, FrameHandshake, hello), FrameNodeJoin, request)
	if _, err := conn.Write(msg); err != nil {
		return Handshake{}, nil, fmt.Errorf("transport: join through %s: %w", addr, err)
	}
	r := bufio.NewReader(conn)
	member, err := readHandshake(r)
	if err != nil {
		return Handshake{}, nil, fmt.Errorf("transport: join through %s: %w", addr, err)
	}
	typ, payload, err := ReadFrame(r, FrameBytesMaxDefault, nil)
	switch {
	case err != nil && ctx.Err() != nil:
		return member, nil, fmt.Errorf("transport: join through %s: %w", addr, ctx.Err())
	case err != nil:
		return member, nil, fmt.Errorf("%w by %s (node %d): %w", ErrJoinRefused, addr, member.NodeID, err)
	case typ != FrameNodeJoinResult:
		return member, nil, fmt.Errorf("%w: frame %v answering a join", ErrMalformed, typ)
	}
	return member, payload, nil
}
