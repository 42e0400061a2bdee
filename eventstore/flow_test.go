package eventstore_test

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestSlowSubscriberBoundedMemory: a subscriber that stops reading holds
// back the server, which keeps at most a page and the transport's flow
// control window in memory, not the stream; it then receives everything.
func TestSlowSubscriberBoundedMemory(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	const perAppend, appends = 500, 80 // 40,000 events of 1 KiB: 40 MB to deliver
	data := bytes.Repeat([]byte("x"), 1024)
	for range appends {
		events := make([]*eventstorev1.Event, perAppend)
		for i := range events {
			events[i] = &eventstorev1.Event{Type: "Big", Data: data, ContentType: "application/octet-stream"}
		}
		n.mustAppend(ctx, "t", "big", nil, events...)
	}
	base := heapInUse()
	stream, err := n.client.Subscribe(ctx, connect.NewRequest(&eventstorev1.SubscribeRequest{Topic: "t", Stream: "big"}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatal(stream.Err())
	}
	time.Sleep(time.Second) // the server sends until flow control stops it
	held := heapInUse()
	const bound = 24 << 20
	if held > base+bound {
		t.Fatalf("a stalled subscriber costs %d MiB of heap (bound %d MiB)", (held-base)>>20, bound>>20)
	}
	got := 1
	for got < perAppend*appends && stream.Receive() {
		if stream.Msg().GetEvent() != nil {
			got++
		}
	}
	if got != perAppend*appends {
		t.Fatalf("received %d events: %v", got, stream.Err())
	}
	t.Logf("stalled subscription held %.1f MiB of heap while 40 MB were pending", float64(int64(held)-int64(base))/(1<<20))
}
