package eventstore_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

// TestConcurrentAppendersOneWinner: in every round 32 writers append to one
// stream expecting the same revision; exactly one succeeds, the others learn
// the actual revision, and the stream holds exactly the winners' events at
// contiguous revisions.
func TestConcurrentAppendersOneWinner(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	const writers, rounds = 32, 20
	winners := make([]string, rounds)
	for round := range rounds {
		expected := noStream()
		if round > 0 {
			expected = exact(uint64(round - 1))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, lost := 0, 0
		start := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := uuid.NewString()
				<-start
				resp, err := n.append(ctx, "orders", "order-1", expected, &eventstorev1.Event{Id: id, Type: "Changed", Data: []byte(fmt.Sprintf(`{"writer":%d}`, w))})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
					winners[round] = id
					if resp.FirstRevision != uint64(round) || resp.Duplicate {
						t.Errorf("round %d: winner got revision %d (duplicate %v)", round, resp.FirstRevision, resp.Duplicate)
					}
				case wrongRevision(err) != nil:
					lost++
					if w := wrongRevision(err); w.ActualRevision == nil || *w.ActualRevision != uint64(round) || w.Stream != "order-1" {
						t.Errorf("round %d: loser told actual %v", round, w.ActualRevision)
					}
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if won != 1 || lost != writers-1 {
			t.Fatalf("round %d: %d won, %d lost", round, won, lost)
		}
	}
	events := n.readAll(ctx, "orders", "order-1")
	if len(events) != rounds || !contiguous(revisions(events), 0) {
		t.Fatalf("stream revisions %v", revisions(events))
	}
	for i, e := range events {
		if e.Id != winners[i] {
			t.Errorf("revision %d is event %s, the winner was %s", i, e.Id, winners[i])
		}
	}
}

// TestIdempotentRetry: re-sending an append's event ids returns its original
// result and writes nothing, even after the stream moved on.
func TestIdempotentRetry(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	a, b := uuid.NewString(), uuid.NewString()
	events := []*eventstorev1.Event{{Id: a, Type: "A"}, {Id: b, Type: "B"}}
	first := n.mustAppend(ctx, "t", "s", noStream(), events...)
	n.mustAppend(ctx, "t", "s", exact(1), ev("C", "{}"))
	for range 2 {
		again := n.mustAppend(ctx, "t", "s", noStream(), events...)
		if !again.Duplicate || again.FirstRevision != first.FirstRevision || again.LastRevision != first.LastRevision ||
			again.Position.GetOffset() != first.Position.GetOffset() {
			t.Fatalf("retry answered %v, first %v", again, first)
		}
	}
	if got := n.readAll(ctx, "t", "s"); len(got) != 3 || got[0].Id != a || got[1].Id != b {
		t.Fatalf("stream after retries: %v", revisions(got))
	}
	resp, err := http.Get("http://" + n.srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cairn_eventstore_appends_total{result="duplicate"}`, `cairn_eventstore_appends_total{result="ok"}`, "cairn_eventstore_append_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A retry mixed with a new event is refused as a whole.
	_, err = n.append(ctx, "t", "s", exact(0), &eventstorev1.Event{Id: b, Type: "B"}, &eventstorev1.Event{Id: uuid.NewString(), Type: "New"})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("partial retry: %v", err)
	}
}

// TestAppendValidation: bad requests get InvalidArgument and write nothing.
func TestAppendValidation(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	cases := map[string]*eventstorev1.AppendRequest{
		"no events":     {Topic: "t", Stream: "s"},
		"no stream":     {Topic: "t", Events: []*eventstorev1.Event{ev("A", "")}},
		"no type":       {Topic: "t", Stream: "s", Events: []*eventstorev1.Event{{Data: []byte("x")}}},
		"bad id":        {Topic: "t", Stream: "s", Events: []*eventstorev1.Event{{Id: "nope", Type: "A"}}},
		"reserved meta": {Topic: "t", Stream: "s", Events: []*eventstorev1.Event{{Type: "A", Metadata: map[string]string{"ce_id": "x"}}}},
		"bad topic":     {Topic: "no/slash", Stream: "s", Events: []*eventstorev1.Event{ev("A", "")}},
		// Data that contradicts its content type would mislead every reader.
		"json that is not": {Topic: "t", Stream: "s", Events: []*eventstorev1.Event{{Type: "A", Data: []byte("not json"), ContentType: "application/json"}}},
		"+json suffix":     {Topic: "t", Stream: "s", Events: []*eventstorev1.Event{{Type: "A", Data: []byte("x"), ContentType: "application/cloudevents+json; charset=utf-8"}}},
	}
	for name, req := range cases {
		if _, err := n.client.Append(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A topic of another cleanup policy is not an event store.
	if _, err := n.srv.Cluster().CreateTopic("plain", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	_, err := n.append(ctx, "plain", "s", nil, ev("A", ""))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("append to a delete-policy topic: %v", err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Message() == "" {
		t.Fatalf("no message: %v", err)
	}
	// Text labelled as text, and JSON events without data, stay accepted.
	n.mustAppend(ctx, "t", "text", nil, &eventstorev1.Event{Type: "A", Data: []byte("not json"), ContentType: "text/plain"})
	n.mustAppend(ctx, "t", "empty", nil, &eventstorev1.Event{Type: "A", ContentType: "application/json"})
	// Metadata round-trips as headers.
	n.mustAppend(ctx, "t", "m", nil, &eventstorev1.Event{Type: "A", Data: []byte(`{"x":1}`), Metadata: map[string]string{"user": "ann", "trace": "t1"}})
	got := n.readAll(ctx, "t", "m")
	if len(got) != 1 || got[0].Metadata["user"] != "ann" || got[0].Metadata["trace"] != "t1" || got[0].ContentType != "application/json" || got[0].Source == "" {
		t.Fatalf("event %v", got)
	}
}
