package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A node this one does not know gets one answer on a join connection,
// with this node's handshake; without a JoinHandler, or from a handler
// that does not answer, the join is refused; and the connection never
// makes the joiner a peer.
func TestJoinConnection(t *testing.T) {
	asked := make(chan []byte, 1)
	member := startNode(t, 1, "", func(c *Config) {
		c.JoinHandler = func(from uint64, p []byte) []byte {
			if from != 9 {
				return nil
			}
			asked <- append([]byte(nil), p...)
			return []byte("welcome")
		}
	})
	plain := startNode(t, 2, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()

	h, answer, err := Join(ctx, member.Addr().String(), 9, []byte("let me in"), nil)
	if err != nil || string(answer) != "welcome" || h.NodeID != 1 || h.ClusterID != "cluster-1" {
		t.Fatalf("join: handshake %+v, answer %q, %v", h, answer, err)
	}
	if got := <-asked; string(got) != "let me in" {
		t.Fatalf("the handler was asked %q", got)
	}
	if member.peer(9) != nil {
		t.Fatal("the joiner became a peer")
	}
	if _, _, err := Join(ctx, member.Addr().String(), 8, nil, nil); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("unanswered join: %v, want ErrJoinRefused", err)
	}
	if _, _, err := Join(ctx, plain.Addr().String(), 9, nil, nil); err == nil {
		t.Fatal("a node without a JoinHandler answered a join")
	}
}

// A join connection whose handler is still running holds no handshake
// slot, so slow joins do not keep peers from reconnecting; joins from one
// source address beyond joinsPerSourceMax at once are refused unanswered.
func TestSlowJoinsHoldNoHandshakeSlot(t *testing.T) {
	entered, release := make(chan struct{}, joinsMax), make(chan struct{})
	member := startNode(t, 5, "", func(c *Config) {
		c.HandshakesPendingMax = joinsPerSourceMax
		c.JoinHandler = func(uint64, []byte) []byte {
			entered <- struct{}{}
			<-release
			return []byte("welcome")
		}
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the member closes: it waits for its handlers
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	results := make(chan error, joinsPerSourceMax)
	for i := range joinsPerSourceMax {
		go func() {
			_, _, err := Join(ctx, member.Addr().String(), uint64(10+i), nil, nil)
			results <- err
		}()
	}
	for range joinsPerSourceMax {
		<-entered
	}
	refusedCtx, cancelRefused := context.WithTimeout(ctx, time.Second)
	defer cancelRefused()
	if _, _, err := Join(refusedCtx, member.Addr().String(), 9, nil, nil); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("a join beyond the per-source bound: %v, want ErrJoinRefused", err)
	}
	other := startNode(t, 2, "", nil)
	connect(t, member, other)
	releaseOnce()
	for range joinsPerSourceMax {
		if err := <-results; err != nil {
			t.Fatalf("a slow join: %v", err)
		}
	}
}
