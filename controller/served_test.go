package controller

import (
	"bytes"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/transport"
	"google.golang.org/protobuf/proto"
)

// A copy of a forwarded request is not served again: dropped while the
// first is being served, answered with the first's result after; another
// sender's request with the same id is its own.
func TestServedTableKnowsCopies(t *testing.T) {
	tb := newServedTable(8)
	k := requestKey{from: 2, id: 7}
	if first, _, _ := tb.begin(k); !first {
		t.Fatal("the first copy is taken for a copy")
	}
	if first, _, answered := tb.begin(k); first || answered {
		t.Fatalf("a copy while the first is served: first %v, answered %v", first, answered)
	}
	want := forwardResult{requestID: 7, status: statusApplied, index: 12, body: []byte("result")}
	tb.finish(k, want)
	first, r, answered := tb.begin(k)
	if first || !answered || r.index != want.index || !bytes.Equal(r.body, want.body) {
		t.Fatalf("a copy after the answer: first %v, answered %v, %+v", first, answered, r)
	}
	if first, _, _ := tb.begin(requestKey{from: 3, id: 7}); !first {
		t.Fatal("another sender's request with the same id is taken for a copy")
	}
}

// The table keeps its last limit requests: older answered ones are
// forgotten, but never one still being served, even past the limit.
func TestServedTableForgetsOnlyAnsweredOnes(t *testing.T) {
	tb := newServedTable(4)
	served := requestKey{from: 1, id: 0} // never answered
	tb.begin(served)
	for id := uint64(1); id <= 10; id++ {
		k := requestKey{from: 1, id: id}
		tb.begin(k)
		tb.finish(k, forwardResult{requestID: id})
	}
	if len(tb.entries) != 4 || len(tb.order) != 4 {
		t.Fatalf("%d entries, %d in order, want 4", len(tb.entries), len(tb.order))
	}
	if first, _, answered := tb.begin(served); first || answered {
		t.Fatal("forgot the request still being served")
	}
	if first, _, _ := tb.begin(requestKey{from: 1, id: 1}); !first {
		t.Fatal("still knows the oldest answered request")
	}
	if _, _, answered := tb.begin(requestKey{from: 1, id: 10}); !answered {
		t.Fatal("forgot the newest answered request")
	}
	// Only requests being served: trim ends, keeping them all.
	busy := newServedTable(2)
	for id := range uint64(5) {
		busy.begin(requestKey{from: 1, id: id})
	}
	if len(busy.entries) != 5 {
		t.Fatalf("%d entries, want the 5 being served", len(busy.entries))
	}
}

// resultFrame waits for the next frame sent and decodes it as the result
// of a forwarded proposal to node from.
func resultFrame(t *testing.T, sent frameRecorder, from uint64) forwardResult {
	t.Helper()
	f := sent.next(t)
	r, err := decodeResult(f.payload)
	if err != nil {
		t.Fatal(err)
	}
	if f.to != from || f.typ != transport.FrameMetaProposeResult {
		t.Fatalf("answer to node %d, type %v: %+v", f.to, f.typ, r)
	}
	return r
}

// A forwarded CreateTopic whose frame arrives twice (the network
// duplicated it, seed 19) is applied once, and the copy is answered with
// the first's result, not "topic already exists".
func TestForwardedProposalCopyIsAppliedOnce(t *testing.T) {
	sent := make(frameRecorder, 4)
	c := openSingle(t, sent)
	cmd, err := meta.EncodeCommand(createTopic(t, c, "orders", 2))
	if err != nil {
		t.Fatal(err)
	}
	frame := encodePropose(7, cmd)
	c.HandleProposeFrame(2, frame)
	first := resultFrame(t, sent, 2)
	applied := c.Applied()
	c.HandleProposeFrame(2, frame) // the copy, after the first's answer
	again := resultFrame(t, sent, 2)

	for name, r := range map[string]forwardResult{"first": first, "copy": again} {
		res := &metav1.Result{}
		if r.requestID != 7 || r.status != statusApplied || proto.Unmarshal(r.body, res) != nil {
			t.Fatalf("%s answer %+v", name, r)
		}
		if err := meta.ResultError(res); err != nil {
			t.Fatalf("%s answer: %v", name, err)
		}
	}
	if again.index != first.index || !bytes.Equal(again.body, first.body) {
		t.Fatalf("the copy was answered at index %d, the first at %d", again.index, first.index)
	}
	// Nothing proposed since: the next command applies right after.
	propose(t, c, allocate(1))
	if c.Applied() != applied+1 {
		t.Fatalf("applied %d after the copy and one command, want %d", c.Applied(), applied+1)
	}
}

// Copies arriving while the first is being served are not proposed: the
// command applies once, and every answer sent is the first's.
func TestForwardedProposalCopiesInFlightAreAppliedOnce(t *testing.T) {
	sent := make(frameRecorder, 8)
	c := openSingle(t, sent)
	cmd, err := meta.EncodeCommand(allocate(1))
	if err != nil {
		t.Fatal(err)
	}
	frame := encodePropose(9, cmd)
	for range 3 {
		c.HandleProposeFrame(2, frame)
	}
	first := resultFrame(t, sent, 2)
	res := &metav1.Result{}
	if first.status != statusApplied || proto.Unmarshal(first.body, res) != nil || meta.ResultError(res) != nil {
		t.Fatalf("answer %+v", first)
	}
	// The next allocation follows the copies': one block was taken by them.
	if res := propose(t, c, allocate(1)); res.FirstProducerId != 2*meta.ProducerIDBlock {
		t.Fatalf("the next block starts at %d, want %d: the copies took more than one", res.FirstProducerId, 2*meta.ProducerIDBlock)
	}
	for {
		select {
		case f := <-sent:
			r, err := decodeResult(f.payload)
			if err != nil || r.index != first.index || !bytes.Equal(r.body, first.body) {
				t.Fatalf("another answer %+v (%v), the first was at index %d", r, err, first.index)
			}
		default:
			return
		}
	}
}
