package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// received is what a subscription delivered before it was stopped.
type received struct {
	events   []*eventstorev1.RecordedEvent
	caughtUp int
	err      error
}

// subscribe collects until want events arrived or ctx ends.
func (n *node) subscribe(ctx context.Context, req *eventstorev1.SubscribeRequest, want int) <-chan received {
	out := make(chan received, 1)
	ready := make(chan struct{})
	go func() {
		var r received
		defer func() { out <- r }()
		stream, err := n.client.Subscribe(ctx, connect.NewRequest(req))
		close(ready)
		if err != nil {
			r.err = err
			return
		}
		defer stream.Close()
		for len(r.events) < want && stream.Receive() {
			msg := stream.Msg()
			switch {
			case msg.GetEvent() != nil:
				r.events = append(r.events, msg.GetEvent())
			case msg.GetCaughtUp() != nil:
				r.caughtUp++
			}
		}
		if len(r.events) < want {
			r.err = fmt.Errorf("subscription ended after %d of %d events: %v", len(r.events), want, stream.Err())
		}
	}()
	<-ready
	return out
}

// TestSubscriptionSwitchOver: subscriptions started while writers append
// deliver every event exactly once, in order, across the switch from
// catching up to live, and say once that they caught up.
func TestSubscriptionSwitchOver(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.srv.Cluster().CreateTopic("live", 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	const before, writers, perWriter = 300, 4, 150
	for i := range before {
		n.mustAppend(ctx, "live", "hot", nil, ev("Before", fmt.Sprint(i)))
	}
	total := before + writers*perWriter
	streamSub := n.subscribe(ctx, &eventstorev1.SubscribeRequest{Topic: "live", Stream: "hot"}, total)
	topicSub := n.subscribe(ctx, &eventstorev1.SubscribeRequest{Topic: "live"}, total+writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				n.mustAppend(ctx, "live", "hot", nil, ev("During", fmt.Sprintf("%d-%d", w, i)))
				n.mustAppend(ctx, "live", fmt.Sprintf("cold-%d-%d", w, i%5), nil, ev("Other", "{}"))
			}
		}()
	}
	wg.Wait()
	s := <-streamSub
	if s.err != nil {
		t.Fatal(s.err)
	}
	if !contiguous(revisions(s.events), 0) || len(s.events) != total || s.caughtUp > 1 {
		t.Fatalf("stream subscription: %d events, contiguous %v, caught up %d times", len(s.events), contiguous(revisions(s.events), 0), s.caughtUp)
	}
	topic := <-topicSub
	if topic.err != nil {
		t.Fatal(topic.err)
	}
	seen := map[string]bool{}
	last := map[int32]int64{}
	for _, e := range topic.events {
		key := fmt.Sprint(e.Position.Partition, "/", e.Position.Offset)
		if seen[key] {
			t.Fatalf("event at %s delivered twice", key)
		}
		seen[key] = true
		if prev, ok := last[e.Position.Partition]; ok && e.Position.Offset <= prev {
			t.Fatalf("partition %d went back from %d to %d", e.Position.Partition, prev, e.Position.Offset)
		}
		last[e.Position.Partition] = e.Position.Offset
	}
	if len(seen) != total+writers*perWriter {
		t.Fatalf("topic subscription saw %d events", len(seen))
	}
}

// TestSubscribeFromEndAndResume: from_end delivers only new events; a
// subscription resumed from a revision after a server restart continues
// exactly there; a server shutting down ends subscriptions promptly.
func TestSubscribeFromEndAndResume(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	for i := range 5 {
		n.mustAppend(ctx, "t", "s", nil, ev("Old", fmt.Sprint(i)))
	}
	sub := n.subscribe(ctx, &eventstorev1.SubscribeRequest{Topic: "t", Stream: "s", FromEnd: true}, 2)
	time.Sleep(200 * time.Millisecond) // let it reach the live end first
	n.mustAppend(ctx, "t", "s", nil, ev("New", "a"), ev("New", "b"))
	got := <-sub
	if got.err != nil || fmt.Sprint(revisions(got.events)) != "[5 6]" {
		t.Fatalf("from end: %v %v", revisions(got.events), got.err)
	}
	// A live subscription ends when the server stops, so Close is not held up.
	live := n.subscribe(ctx, &eventstorev1.SubscribeRequest{Topic: "t", Stream: "s"}, 100)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	n.restart()
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("restart with a live subscription took %v", took)
	}
	if r := <-live; r.err == nil || len(r.events) != 7 {
		t.Fatalf("subscription across shutdown: %d events, err %v", len(r.events), r.err)
	}
	from := uint64(6)
	resumed := n.subscribe(ctx, &eventstorev1.SubscribeRequest{Topic: "t", Stream: "s", FromRevision: &from}, 2)
	n.mustAppend(ctx, "t", "s", nil, ev("After", "c"))
	if r := <-resumed; r.err != nil || fmt.Sprint(revisions(r.events)) != "[6 7]" {
		t.Fatalf("resumed: %v %v", revisions(r.events), r.err)
	}
}
