package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/transport"
)

// Node requests: what a node's front end asks of another node's (the
// transaction coordinator's markers to a partition's leader, a leader's
// KIP-890 check with a coordinator) carried over the node-to-node
// transport rather than a client listener. The connection says which
// node sent it (its handshake, mutual TLS with --raft-tls), so whatever
// the Kafka listeners require of clients, a node needs no credentials of
// theirs, and no client reaches these requests.
//
// Payloads (integers big-endian), inside transport's NodeRequest and
// NodeResponse frames:
//
//	NodeRequest:  0 8 request id | 8 … body (the handler's format)
//	NodeResponse: 0 8 request id | 8 1 status | 9 … body
//
// Status 0: served, the body is the handler's answer; 1: the handler
// failed, the body is its error's text; 2: not served (no handler yet,
// closing, or too many requests at once): nothing was done, send again.

// NodeRequestHandler serves a node request's body from node from and
// returns the answer's body. ctx ends when the cluster closes.
type NodeRequestHandler func(ctx context.Context, from int32, body []byte) ([]byte, error)

// ErrNodeRequest: a node request that got no answer, or a refusal; what
// the other node did is unknown unless the error says it was not served.
var ErrNodeRequest = errors.New("cluster: node request")

// nodeRequestsServedMax bounds the requests this node serves at once, all
// senders together: each holds a goroutine until its handler returns.
const nodeRequestsServedMax = 256

const (
	nodeRequestHeaderBytes  = 8
	nodeResponseHeaderBytes = 9

	nodeStatusServed    = 0
	nodeStatusFailed    = 1
	nodeStatusNotServed = 2
)

// nodeResponse is a decoded NodeResponse.
type nodeResponse struct {
	status byte
	body   []byte
}

// nodeRequests sends this node's requests and serves the others'.
type nodeRequests struct {
	logger  *slog.Logger
	send    func(to uint64, typ transport.FrameType, payload []byte) error
	handler atomic.Pointer[NodeRequestHandler]
	slots   chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	next    uint64
	pending map[uint64]pendingNodeRequest
	closed  bool
	wg      sync.WaitGroup
}

type pendingNodeRequest struct {
	node uint64
	ch   chan nodeResponse // buffered, 1
}

func newNodeRequests(e env.Env, send func(to uint64, typ transport.FrameType, payload []byte) error) *nodeRequests {
	ctx, cancel := context.WithCancel(context.Background())
	// Responses carry only the id: a random start keeps a late answer
	// meant for a previous run of this node from answering this one's.
	var b [8]byte
	_, _ = e.Rand.Read(b[:]) // never fails
	return &nodeRequests{logger: e.Logger, send: send, slots: make(chan struct{}, nodeRequestsServedMax),
		ctx: ctx, cancel: cancel, next: binary.BigEndian.Uint64(b[:]), pending: map[uint64]pendingNodeRequest{}}
}

// request sends body to node and waits for its answer, until ctx ends.
func (r *nodeRequests) request(ctx context.Context, node uint64, body []byte) ([]byte, error) {
	ch := make(chan nodeResponse, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: this node is closing", ErrNodeRequest)
	}
	r.next++
	id := r.next
	r.pending[id] = pendingNodeRequest{node: node, ch: ch}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
	}()
	payload := binary.BigEndian.AppendUint64(make([]byte, 0, nodeRequestHeaderBytes+len(body)), id)
	if err := r.send(node, transport.FrameNodeRequest, append(payload, body...)); err != nil {
		return nil, fmt.Errorf("%w to node %d: not sent: %w", ErrNodeRequest, node, err)
	}
	select {
	case resp := <-ch:
		switch resp.status {
		case nodeStatusServed:
			return resp.body, nil
		case nodeStatusFailed:
			return nil, fmt.Errorf("%w: node %d: %s", ErrNodeRequest, node, resp.body)
		default:
			return nil, fmt.Errorf("%w: node %d did not serve it (busy or starting)", ErrNodeRequest, node)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("%w to node %d: no answer: %w", ErrNodeRequest, node, ctx.Err())
	case <-r.ctx.Done():
		return nil, fmt.Errorf("%w: this node is closing", ErrNodeRequest)
	}
}

// handleRequest serves a NodeRequest frame on a goroutine of its own (the
// transport's reader must not wait for a handler that waits for Raft).
func (r *nodeRequests) handleRequest(from uint64, payload []byte) {
	if len(payload) < nodeRequestHeaderBytes {
		r.logger.Warn("cluster: dropped a malformed node request", "from", from, "bytes", len(payload))
		return
	}
	id := binary.BigEndian.Uint64(payload)
	// The transport reads its next frame into payload's buffer once this
	// returns: the handler's goroutine gets a copy.
	body := bytes.Clone(payload[nodeRequestHeaderBytes:])
	h := r.handler.Load()
	if h == nil {
		r.reply(from, id, nodeStatusNotServed, nil)
		return
	}
	select {
	case r.slots <- struct{}{}:
	default:
		r.reply(from, id, nodeStatusNotServed, nil)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed { // close is waiting for the goroutines it knows of
		<-r.slots
		return
	}
	r.wg.Go(func() {
		defer func() { <-r.slots }()
		answer, err := (*h)(r.ctx, int32(from), body)
		if err != nil {
			r.reply(from, id, nodeStatusFailed, []byte(err.Error()))
			return
		}
		r.reply(from, id, nodeStatusServed, answer)
	})
}

func (r *nodeRequests) reply(to, id uint64, status byte, body []byte) {
	payload := binary.BigEndian.AppendUint64(make([]byte, 0, nodeResponseHeaderBytes+len(body)), id)
	payload = append(append(payload, status), body...)
	if err := r.send(to, transport.FrameNodeResponse, payload); err != nil {
		// The sender's deadline answers it.
		r.logger.Warn("cluster: dropped a node request's answer", "to", to, "err", err)
	}
}

// handleResponse hands a NodeResponse frame to the request waiting for it,
// when from is the node it went to; others (late, duplicated, or for an
// earlier run) are dropped.
func (r *nodeRequests) handleResponse(from uint64, payload []byte) {
	if len(payload) < nodeResponseHeaderBytes {
		r.logger.Warn("cluster: dropped a malformed node response", "from", from, "bytes", len(payload))
		return
	}
	id := binary.BigEndian.Uint64(payload)
	// A copy: the waiting request reads it after the transport reused payload.
	resp := nodeResponse{status: payload[8], body: bytes.Clone(payload[nodeResponseHeaderBytes:])}
	r.mu.Lock()
	p, ok := r.pending[id]
	r.mu.Unlock()
	if !ok || p.node != from {
		return
	}
	select {
	case p.ch <- resp:
	default: // a duplicate
	}
}

// close ends the requests waiting and the handlers running, and waits for
// the handlers' goroutines.
func (r *nodeRequests) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// SetNodeRequestHandler makes h serve the node requests other nodes send
// this one (NodeRequest); nil stops serving them (they are answered as not
// served). A single node has none to serve.
func (c *Cluster) SetNodeRequestHandler(h NodeRequestHandler) {
	if c.node == nil || c.node.requests == nil {
		return
	}
	if h == nil {
		c.node.requests.handler.Store(nil)
		return
	}
	c.node.requests.handler.Store(&h)
}

// NodeRequest sends body to node's NodeRequestHandler over the node-to-node
// transport and returns its answer, waiting until ctx ends. An error
// wraps ErrNodeRequest.
func (c *Cluster) NodeRequest(ctx context.Context, node int32, body []byte) ([]byte, error) {
	if c.node == nil || c.node.requests == nil {
		return nil, fmt.Errorf("%w: not a cluster node", ErrNodeRequest)
	}
	if node == c.cfg.NodeID {
		return nil, fmt.Errorf("%w: node %d is this node", ErrNodeRequest, node)
	}
	return c.node.requests.request(ctx, uint64(node), body)
}
