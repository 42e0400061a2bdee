package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// recv receives one message or fails the test.
func recv(t *testing.T, sub *Subscription) Message {
	t.Helper()
	m, err := sub.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func wantEvent(t *testing.T, sub *Subscription, stream, typ string) RecordedEvent {
	t.Helper()
	m := recv(t, sub)
	if m.Kind != MessageEvent || m.Event.Stream != stream || m.Event.Type != typ {
		t.Fatalf("got %s %s/%s, want event %s/%s", m.Kind, m.Event.Stream, m.Event.Type, stream, typ)
	}
	return m.Event
}

// TestSubscribeTopic: a filtered topic subscription catches up, says so,
// goes live, reports positions moved by filtered-out records, and resumes
// from Positions without re-delivering anything.
func TestSubscribeTopic(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	for _, e := range []struct{ stream, typ string }{{"a-1", "Kept"}, {"a-2", "Skipped"}, {"a-1", "Kept"}} {
		if _, err := c.Append(ctx, "feed", e.stream, Any, EventData{Type: e.typ}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subscribe(ctx, "feed", "", WithFilter(Filter{EventTypePrefix: "Kept"}))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wantEvent(t, sub, "a-1", "Kept")
	wantEvent(t, sub, "a-1", "Kept")
	if m := recv(t, sub); m.Kind != MessageCaughtUp || !sub.CaughtUp() {
		t.Fatalf("got %s, want caught-up", m.Kind)
	}
	if got := sub.Positions(); !slices.Equal(got, []Position{{0, 3}}) {
		t.Fatalf("positions after catching up: %v", got)
	}

	if _, err := c.Append(ctx, "feed", "a-3", Any, EventData{Type: "Skipped"}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, sub)
	if m.Kind != MessageCheckpoint || !slices.Equal(m.Positions, []Position{{0, 4}}) {
		t.Fatalf("after a filtered-out append: %s %v, want checkpoint at 0@4", m.Kind, m.Positions)
	}
	if _, err := c.Append(ctx, "feed", "a-4", Any, EventData{Type: "Kept"}); err != nil {
		t.Fatal(err)
	}
	if ev := wantEvent(t, sub, "a-4", "Kept"); ev.Position != (Position{0, 4}) {
		t.Fatalf("live event at %v", ev.Position)
	}
	resume := sub.Positions()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("recv after close: %v", err)
	}

	if _, err := c.Append(ctx, "feed", "a-5", Any, EventData{Type: "Kept"}); err != nil {
		t.Fatal(err)
	}
	again, err := c.Subscribe(ctx, "feed", "", FromPositions(resume...), WithFilter(Filter{EventTypePrefix: "Kept"}))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	wantEvent(t, again, "a-5", "Kept")
	if m := recv(t, again); m.Kind != MessageCaughtUp {
		t.Fatalf("resumed subscription: %s, want caught-up after the one new event", m.Kind)
	}
}

// TestSubscribeStream: a stream subscription from a revision delivers that
// stream only, then live events, and iterates with All.
func TestSubscribeStream(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	if _, err := c.Append(ctx, "games", "g-1", NoStream, events("Moved", 3)...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "games", "g-2", NoStream, events("Moved", 1)...); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "games", "g-1", FromRevision(1))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []uint64
	live := false
	for m, err := range sub.All() {
		if err != nil {
			t.Fatal(err)
		}
		switch m.Kind {
		case MessageEvent:
			if m.Event.Stream != "g-1" {
				t.Fatalf("event of %s", m.Event.Stream)
			}
			got = append(got, m.Event.Revision)
		case MessageCaughtUp:
			live = true
			if _, err := c.Append(ctx, "games", "g-1", Exact(2), events("Moved", 2)...); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) == 4 {
			break
		}
	}
	if !live || !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("delivered %v (live %v), want 1-4", got, live)
	}
	if next, ok := sub.NextRevision(); !ok || next != 5 {
		t.Fatalf("next revision %d %v", next, ok)
	}
}

// TestGRPCProtocol: the same calls work over gRPC on the h2c transport.
func TestGRPCProtocol(t *testing.T) {
	t.Parallel()
	c := startServer(t, WithGRPC())
	ctx := testContext(t)
	if _, err := c.Append(ctx, "g", "s", NoStream, events("E", 2)...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "g", "s", NoStream, events("E", 1)...); !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatalf("wrong expected revision over gRPC: %v", err)
	}
	sub, err := c.Subscribe(ctx, "g", "s")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 2 {
		if ev := wantEvent(t, sub, "s", "E"); ev.Revision != uint64(i) || string(ev.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if m := recv(t, sub); m.Kind != MessageCaughtUp {
		t.Fatalf("got %s", m.Kind)
	}
}
