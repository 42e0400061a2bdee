package eventstore

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
)

// forwardedHeader marks a call one node forwarded to another (its value is
// the forwarding node's id). A node never forwards such a call again: it
// serves it or answers UNAVAILABLE, so nodes that disagree about a leader
// cannot pass a call around.
const forwardedHeader = "Cairn-Forwarded-By"

// Limits of the forwarding client.
const (
	// peerClientsMax bounds the cached clients, one per leader address; a
	// cluster has a few nodes, and addresses change only when nodes move.
	peerClientsMax = 64
	// peerIdleConnsMax bounds idle connections per leader; HTTP/2 carries
	// every forwarded call to one node on one connection anyway.
	peerIdleConnsMax = 4
	peerDialTimeout  = 5 * time.Second
	// A connection whose leader stopped answering pings is closed, ending
	// the calls and subscription relays on it.
	peerPingInterval = 15 * time.Second
	peerPingTimeout  = 10 * time.Second
	// messageBytesMax is the largest message the API reads or sends.
	messageBytesMax = 64 << 20
)

// peers forwards calls to the nodes leading the partitions they name.
type peers struct {
	http *http.Client

	mu      sync.Mutex
	clients map[string]eventstorev1connect.EventStoreClient // by HOST:PORT
}

func newPeers() *peers {
	// The API is served over cleartext HTTP/2 (and HTTP/1.1); HTTP/2 with
	// prior knowledge carries unary calls and server streams alike.
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{
		Protocols:           protocols,
		DialContext:         (&net.Dialer{Timeout: peerDialTimeout}).DialContext,
		MaxIdleConnsPerHost: peerIdleConnsMax,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: peerPingInterval, PingTimeout: peerPingTimeout},
	}
	return &peers{http: &http.Client{Transport: t}, clients: map[string]eventstorev1connect.EventStoreClient{}}
}

// client is the API client of the node at addr.
func (p *peers) client(addr string) eventstorev1connect.EventStoreClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c
	}
	if len(p.clients) >= peerClientsMax {
		clear(p.clients) // addresses of nodes long gone; the live ones come back
	}
	c := eventstorev1connect.NewEventStoreClient(p.http, "http://"+addr,
		connect.WithReadMaxBytes(messageBytesMax), connect.WithSendMaxBytes(messageBytesMax))
	p.clients[addr] = c
	return c
}

func (p *peers) close() { p.http.CloseIdleConnections() }

// markForwarded marks a request this node forwards. The caller's deadline
// travels in the call's context: connect sends it as the call's timeout;
// the caller's credentials (WithCallerAuthorization) as its Authorization
// header, so that the leader authenticates and authorizes the caller, not
// this node.
func (s *Service) markForwarded(ctx context.Context, h http.Header) {
	h.Set(forwardedHeader, strconv.Itoa(int(s.placement.NodeID())))
	if v, ok := ctx.Value(callerAuthorizationKey{}).(string); ok && v != "" {
		h.Set("Authorization", v)
	}
}

type callerAuthorizationKey struct{}

// WithCallerAuthorization returns ctx carrying the Authorization header the
// caller authenticated with, which a call forwarded to a partition's leader
// carries again. Nodes do not vouch for each other's callers: a principal
// passed between them in a header of its own would be believed from
// anyone who can reach the HTTP port, while credentials prove themselves.
func WithCallerAuthorization(ctx context.Context, header string) context.Context {
	return context.WithValue(ctx, callerAuthorizationKey{}, header)
}

// isForwarded reports whether a call came from another node.
func isForwarded(h http.Header) bool { return h.Get(forwardedHeader) != "" }

// call is one unary method of the generated client, e.g.
// eventstorev1connect.EventStoreClient.Append.
type call[Req, Resp any] func(eventstorev1connect.EventStoreClient, context.Context, *connect.Request[Req]) (*connect.Response[Resp], error)

// forward sends a unary call to the leader at r and returns its answer,
// errors included, as the leader gave it.
func forward[Req, Resp any](ctx context.Context, s *Service, r route, name string, msg *Req, method call[Req, Resp]) (*connect.Response[Resp], error) {
	forwardedCalls.WithLabelValues(name).Inc()
	req := connect.NewRequest(msg)
	s.markForwarded(ctx, req.Header())
	resp, err := method(s.peers.client(r.addr), ctx, req)
	if err != nil {
		return nil, forwardError(ctx, r, err)
	}
	return connect.NewResponse(resp.Msg), nil
}

// forwardError is what the caller of a forwarded call gets: the leader's
// own error unchanged (code, message, details; connect drops the leader's
// headers); the caller's own deadline or cancellation with its code; or,
// when the leader could not be reached or died mid-call (a refused
// connection, a reset, a response cut short, which the client reports as
// UNKNOWN), UNAVAILABLE with the leader named: the caller retries, and a
// retried append whose events were written is answered as a duplicate.
func forwardError(ctx context.Context, r route, err error) error {
	if connect.IsWireError(err) {
		return err
	}
	code := connect.CodeUnavailable
	if ctx.Err() != nil {
		code = connect.CodeOf(err)
	}
	return connect.NewError(code, fmt.Errorf("forward to leader node %d at %s: %w", r.node, r.addr, err))
}

// relay forwards a subscription to the leader at r and sends what it sends
// until either side ends, or until the leader changes: then the caller gets
// UNAVAILABLE and resubscribes (to any node) from the last position it got.
// A topic subscription names the partitions the leader serves (nil: a
// stream's).
func (s *Service) relay(ctx context.Context, r route, m *eventstorev1.SubscribeRequest, partitions []int32, out sender) error {
	forwardedCalls.WithLabelValues("Subscribe").Inc()
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	moved := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.watchPlacement(ctx, s.stillLedBy(r)); err != nil {
			moved <- err
			cancel()
		}
	}()
	defer func() { cancel(); <-done }()
	req := connect.NewRequest(m)
	s.markForwarded(ctx, req.Header())
	if partitions != nil {
		req.Header().Set(partitionsHeader, formatPartitions(partitions))
	}
	stream, err := s.peers.client(r.addr).Subscribe(ctx, req)
	if err != nil {
		return forwardError(outer, r, err)
	}
	defer stream.Close()
	for stream.Receive() {
		if err := out.Send(stream.Msg()); err != nil {
			return err
		}
	}
	select {
	case err := <-moved:
		return err
	default:
	}
	if outer.Err() != nil {
		return outer.Err()
	}
	if err := stream.Err(); err != nil {
		return forwardError(outer, r, err)
	}
	return nil
}

// watchPlacement returns placed()'s error once it fails, checking it at
// each change of leaders, or nil when ctx ends.
func (s *Service) watchPlacement(ctx context.Context, placed func() error) error {
	for {
		changed := s.placement.LeadersChanged() // before checking, so no change is missed
		if err := placed(); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
