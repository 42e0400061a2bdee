package cluster

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/transport"
)

// nodePair is two nodes' nodeRequests, 1 and 2, whose frames reach each
// other as the transport delivers them: on the receiver's reader, here a
// goroutine per frame, in a buffer the reader fills with the next frame
// once the handler returned (overwritten here). answerFrom is the node 1 is told node 2's frames
// come from.
type nodePair struct {
	one, two   *nodeRequests
	answerFrom atomic.Uint64
}

func newNodePair() *nodePair {
	p := &nodePair{}
	p.answerFrom.Store(2)
	deliver := func(to *nodeRequests, from uint64) func(uint64, transport.FrameType, []byte) error {
		return func(_ uint64, typ transport.FrameType, payload []byte) error {
			buf := bytes.Clone(payload)
			go func() {
				if typ == transport.FrameNodeRequest {
					to.handleRequest(from, buf)
				} else {
					to.handleResponse(from, buf)
				}
				for i := range buf {
					buf[i] = 0xee // the next frame
				}
			}()
			return nil
		}
	}
	e := env.Real()
	p.one = newNodeRequests(e, func(to uint64, typ transport.FrameType, payload []byte) error {
		return deliver(p.two, 1)(to, typ, payload)
	})
	p.two = newNodeRequests(e, func(to uint64, typ transport.FrameType, payload []byte) error {
		return deliver(p.one, p.answerFrom.Load())(to, typ, payload)
	})
	return p
}

// TestNodeRequests: a request is answered with the handler's body, and the
// handler learns the sending node; a handler's error comes back as an
// ErrNodeRequest naming it; without a handler nothing is served; an
// answer from another node than the one asked is dropped (the caller's
// deadline ends the wait); closing ends a running handler's context and
// the waits of this node's requests.
func TestNodeRequests(t *testing.T) {
	p := newNodePair()
	defer p.one.close()
	defer p.two.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := p.one.request(ctx, 2, []byte("hello")); !errors.Is(err, ErrNodeRequest) {
		t.Fatalf("no handler: %v, want ErrNodeRequest", err)
	}
	blocked := make(chan struct{})
	var h NodeRequestHandler = func(ctx context.Context, from int32, body []byte) ([]byte, error) {
		switch string(body) {
		case "fail":
			return nil, errors.New("refused here")
		case "block":
			close(blocked)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return append([]byte{byte(from)}, body...), nil
	}
	p.two.handler.Store(&h)
	answer, err := p.one.request(ctx, 2, []byte("hello"))
	if err != nil || !bytes.Equal(answer, []byte("\x01hello")) {
		t.Fatalf("answered %q, %v; want \"\\x01hello\"", answer, err)
	}
	if _, err := p.one.request(ctx, 2, []byte("fail")); !errors.Is(err, ErrNodeRequest) || !bytes.Contains([]byte(err.Error()), []byte("refused here")) {
		t.Fatalf("a failing handler: %v", err)
	}

	// Node 2 answers, but node 1 is told the answer came from node 3.
	p.answerFrom.Store(3)
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = p.one.request(short, 2, []byte("hello"))
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an answer from the wrong node: %v, want the deadline", err)
	}
	p.answerFrom.Store(2)

	done := make(chan error, 1)
	go func() {
		_, err := p.one.request(ctx, 2, []byte("block"))
		done <- err
	}()
	<-blocked
	p.two.close() // ends the blocked handler, which answers its error
	if err := <-done; !errors.Is(err, ErrNodeRequest) {
		t.Fatalf("a request whose handler's node closed: %v", err)
	}
	go func() {
		_, err := p.one.request(ctx, 2, []byte("hello"))
		done <- err
	}()
	p.one.close()
	if err := <-done; !errors.Is(err, ErrNodeRequest) {
		t.Fatalf("a request of a closing node: %v", err)
	}
}
