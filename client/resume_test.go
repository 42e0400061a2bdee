package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
)

// subscribeCall is what a scripted server does with one Subscribe: send
// these messages, then end with end (nil: end cleanly).
type subscribeCall struct {
	send []*eventstorev1.SubscribeResponse
	end  error
}

// scriptedServer answers the n-th Subscribe with script[n] and any further
// one with UNAVAILABLE, and keeps the requests.
type scriptedServer struct {
	eventstorev1connect.UnimplementedEventStoreHandler
	script []subscribeCall

	mu       sync.Mutex
	requests []*eventstorev1.SubscribeRequest
}

func (s *scriptedServer) Subscribe(_ context.Context, req *connect.Request[eventstorev1.SubscribeRequest], out *connect.ServerStream[eventstorev1.SubscribeResponse]) error {
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, req.Msg)
	s.mu.Unlock()
	if n >= len(s.script) {
		return connect.NewError(connect.CodeUnavailable, errors.New("not the leader of t-0; no leader known"))
	}
	for _, m := range s.script[n].send {
		if err := out.Send(m); err != nil {
			return err
		}
	}
	return s.script[n].end
}

func (s *scriptedServer) received() []*eventstorev1.SubscribeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// startScripted serves s over cleartext HTTP/2 and returns a client of it
// that retries three times with short pauses.
func startScripted(t *testing.T, s *scriptedServer) *Client {
	t.Helper()
	path, handler := eventstorev1connect.NewEventStoreHandler(s)
	mux := http.NewServeMux()
	mux.Handle(path, handler)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, WithRetry(3, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func eventAt(stream string, revision uint64, partition int32, offset int64) *eventstorev1.SubscribeResponse {
	return &eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_Event{Event: &eventstorev1.RecordedEvent{
		Topic: "t", Stream: stream, Revision: revision, Type: "E",
		Position: &eventstorev1.Position{Partition: partition, Offset: offset},
	}}}
}

var (
	caughtUp    = &eventstorev1.SubscribeResponse{Content: &eventstorev1.SubscribeResponse_CaughtUp{CaughtUp: &eventstorev1.CaughtUp{}}}
	unavailable = connect.NewError(connect.CodeUnavailable, errors.New("the leader of t-0 changed from node 1 to node 2"))
)

// drain receives until an error and describes what it got: "s@rev" or
// "p:off" per event, "caught-up", and the end.
func drain(t *testing.T, sub *Subscription) ([]string, error) {
	t.Helper()
	var got []string
	for range 20 {
		m, err := sub.Recv()
		if err != nil {
			return got, err
		}
		switch m.Kind {
		case MessageEvent:
			got = append(got, fmt.Sprintf("%s@%d/%d:%d", m.Event.Stream, m.Event.Revision, m.Event.Position.Partition, m.Event.Position.Offset))
		default:
			got = append(got, m.Kind.String())
		}
	}
	t.Fatal("more than 20 messages")
	return nil, nil
}

// TestSubscriptionResumesWhenUnavailable: a subscription the server ends
// as UNAVAILABLE (a leader change on a cluster, a server going away) is
// resumed by Recv from right after what it delivered, with no second
// caught-up; where it has no exact place to resume from, or after the
// retry attempts, or on another error, Recv returns the error instead.
func TestSubscriptionResumesWhenUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stream   string
		opts     []ReadOption
		script   []subscribeCall
		want     []string
		wantCode connect.Code // 0: io.EOF
		wantReqs []string     // where each request started
	}{
		{
			name:   "stream from the beginning",
			stream: "s",
			script: []subscribeCall{
				{send: []*eventstorev1.SubscribeResponse{eventAt("s", 0, 0, 10), eventAt("s", 1, 0, 12), caughtUp}, end: unavailable},
				{send: []*eventstorev1.SubscribeResponse{caughtUp, eventAt("s", 2, 0, 15)}},
			},
			want:     []string{"s@0/0:10", "s@1/0:12", "caught-up", "s@2/0:15"},
			wantReqs: []string{"start", "revision 2"},
		},
		{
			name:   "stream from the end, after an event",
			stream: "s",
			opts:   []ReadOption{FromEnd()},
			script: []subscribeCall{
				{send: []*eventstorev1.SubscribeResponse{caughtUp, eventAt("s", 7, 0, 30)}, end: unavailable},
				{send: []*eventstorev1.SubscribeResponse{caughtUp}},
			},
			want:     []string{"caught-up", "s@7/0:30"},
			wantReqs: []string{"end", "revision 8"},
		},
		{
			name:     "stream from the end, nothing delivered",
			stream:   "s",
			opts:     []ReadOption{FromEnd()},
			script:   []subscribeCall{{send: []*eventstorev1.SubscribeResponse{caughtUp}, end: unavailable}},
			want:     []string{"caught-up"},
			wantCode: connect.CodeUnavailable,
			wantReqs: []string{"end"},
		},
		{
			name: "topic from positions",
			opts: []ReadOption{FromPositions(Position{Partition: 0, Offset: 5})},
			script: []subscribeCall{
				{send: []*eventstorev1.SubscribeResponse{eventAt("a", 0, 1, 3)}, end: unavailable},
				{send: []*eventstorev1.SubscribeResponse{eventAt("b", 4, 0, 6)}},
			},
			want:     []string{"a@0/1:3", "b@4/0:6"},
			wantReqs: []string{"positions [0:5]", "positions [0:5 1:4]"},
		},
		{
			name:     "topic from the end",
			opts:     []ReadOption{FromEnd()},
			script:   []subscribeCall{{send: []*eventstorev1.SubscribeResponse{caughtUp, eventAt("a", 0, 0, 3)}, end: unavailable}},
			want:     []string{"caught-up", "a@0/0:3"},
			wantCode: connect.CodeUnavailable,
			wantReqs: []string{"end"},
		},
		{
			name:     "unavailable on every attempt",
			stream:   "s",
			script:   []subscribeCall{{end: unavailable}},
			wantCode: connect.CodeUnavailable,
			wantReqs: []string{"start", "start", "start"},
		},
		{
			name:     "not unavailable",
			stream:   "s",
			script:   []subscribeCall{{send: []*eventstorev1.SubscribeResponse{eventAt("s", 0, 0, 1)}, end: connect.NewError(connect.CodeInternal, errors.New("broken"))}},
			want:     []string{"s@0/0:1"},
			wantCode: connect.CodeInternal,
			wantReqs: []string{"start"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &scriptedServer{script: tc.script}
			c := startScripted(t, srv)
			sub, err := c.Subscribe(testContext(t), "t", tc.stream, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			got, err := drain(t, sub)
			if !slices.Equal(got, tc.want) {
				t.Errorf("delivered %v, want %v", got, tc.want)
			}
			switch {
			case tc.wantCode == 0 && !errors.Is(err, io.EOF):
				t.Errorf("ended with %v, want io.EOF", err)
			case tc.wantCode != 0 && connect.CodeOf(err) != tc.wantCode:
				t.Errorf("ended with %v, want %v", err, tc.wantCode)
			}
			var starts []string
			for _, r := range srv.received() {
				starts = append(starts, describeStart(r))
			}
			if !slices.Equal(starts, tc.wantReqs) {
				t.Errorf("requests started at %v, want %v", starts, tc.wantReqs)
			}
		})
	}
}

// describeStart says where a subscribe request starts.
func describeStart(r *eventstorev1.SubscribeRequest) string {
	switch {
	case r.GetFromEnd():
		return "end"
	case r.FromRevision != nil:
		return fmt.Sprintf("revision %d", r.GetFromRevision())
	case len(r.GetFromPositions()) > 0:
		var ps []string
		for _, p := range r.GetFromPositions() {
			ps = append(ps, fmt.Sprintf("%d:%d", p.GetPartition(), p.GetOffset()))
		}
		return "positions [" + strings.Join(ps, " ") + "]"
	}
	return "start"
}
