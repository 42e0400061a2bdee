package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
)

// esStream is what one writer knows of its stream: the events acknowledged
// at each revision, and the one append whose outcome a crash left unknown.
type esStream struct {
	name    string
	acked   []string // event id per revision
	pending string   // id sent without an answer, "" when none
}

// TestEventStoreKill9: writers append to their streams with exact expected
// revisions while the server is SIGKILLed. After each restart every
// acknowledged event is at its revision, revisions are contiguous, an append
// whose answer was lost is either there once or not at all (its retry with
// the same id says which), and the index accepts the next exact revision.
func TestEventStoreKill9(t *testing.T) {
	server := startCairn(t, "")
	client := eventstorev1connect.NewEventStoreClient(http.DefaultClient, "http://"+server.httpAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: "ledger", Stream: "warmup",
		Events: []*eventstorev1.Event{{Type: "Started"}}})); err != nil {
		t.Fatal(err)
	}
	const writers, cycles = 8, 3
	streams := make([]*esStream, writers)
	for w := range streams {
		streams[w] = &esStream{name: fmt.Sprintf("account-%d", w)}
	}
	total := 0
	for cycle := range cycles {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				esWrite(ctx, t, client, s, stop)
			}()
		}
		time.Sleep(time.Second + time.Duration(cycle)*300*time.Millisecond)
		server.Kill()
		close(stop)
		wg.Wait()
		server.Restart()
		for _, s := range streams {
			esVerify(t, ctx, client, s)
		}
		acked := 0
		for _, s := range streams {
			acked += len(s.acked)
		}
		t.Logf("cycle %d: %d events acknowledged so far, all verified", cycle+1, acked)
		total = acked
		if t.Failed() {
			return
		}
	}
	if total < writers*10 {
		t.Fatalf("only %d events acknowledged in %d cycles", total, cycles)
	}
}

// esWrite appends one event at a time at the next exact revision until stop.
func esWrite(ctx context.Context, t *testing.T, client eventstorev1connect.EventStoreClient, s *esStream, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := s.pending
		if id == "" {
			id = uuid.NewString()
			s.pending = id
		}
		expected := &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
		if len(s.acked) > 0 {
			expected = &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: uint64(len(s.acked) - 1)}}
		}
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.Append(callCtx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: "ledger", Stream: s.name,
			ExpectedRevision: expected, Events: []*eventstorev1.Event{{Id: id, Type: "Deposited", Data: []byte(`{"amount":1}`)}}}))
		cancel()
		if err != nil {
			return // the server is gone; the outcome of id is unknown
		}
		if resp.Msg.FirstRevision != uint64(len(s.acked)) {
			t.Errorf("%s: acknowledged at revision %d, expected %d", s.name, resp.Msg.FirstRevision, len(s.acked))
			return
		}
		s.acked = append(s.acked, id)
		s.pending = ""
	}
}

// esVerify checks a stream after a restart and settles its pending append.
func esVerify(t *testing.T, ctx context.Context, client eventstorev1connect.EventStoreClient, s *esStream) {
	t.Helper()
	var events []*eventstorev1.RecordedEvent
	var from *uint64
	for {
		resp, err := client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "ledger", Stream: s.name, FromRevision: from, MaxCount: 1000}))
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() == connect.CodeNotFound && len(s.acked) == 0 {
			break
		}
		if err != nil {
			t.Fatalf("%s: read: %v", s.name, err)
		}
		events = append(events, resp.Msg.Events...)
		if resp.Msg.EndOfStream || len(resp.Msg.Events) == 0 {
			break
		}
		next := events[len(events)-1].Revision + 1
		from = &next
	}
	for i, e := range events {
		if e.Revision != uint64(i) {
			t.Fatalf("%s: revision %d at position %d", s.name, e.Revision, i)
		}
		if i < len(s.acked) && e.Id != s.acked[i] {
			t.Fatalf("%s: revision %d holds %s, acknowledged %s", s.name, i, e.Id, s.acked[i])
		}
	}
	switch extra := len(events) - len(s.acked); {
	case extra < 0:
		t.Fatalf("%s: %d events, %d acknowledged", s.name, len(events), len(s.acked))
	case extra > 1 || (extra == 1 && events[len(events)-1].Id != s.pending):
		t.Fatalf("%s: %d unexpected events after the acknowledged ones", s.name, extra)
	}
	if s.pending == "" {
		return
	}
	// Retrying the unanswered append settles it: a duplicate if it was written.
	expected := &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	if len(s.acked) > 0 {
		expected = &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: uint64(len(s.acked) - 1)}}
	}
	resp, err := client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: "ledger", Stream: s.name,
		ExpectedRevision: expected, Events: []*eventstorev1.Event{{Id: s.pending, Type: "Deposited", Data: []byte(`{"amount":1}`)}}}))
	if err != nil {
		t.Fatalf("%s: retry of the unanswered append: %v", s.name, err)
	}
	wasWritten := len(events) > len(s.acked)
	if resp.Msg.Duplicate != wasWritten || resp.Msg.FirstRevision != uint64(len(s.acked)) {
		t.Fatalf("%s: retry answered duplicate=%v at %d; written before: %v", s.name, resp.Msg.Duplicate, resp.Msg.FirstRevision, wasWritten)
	}
	s.acked = append(s.acked, s.pending)
	s.pending = ""
}
