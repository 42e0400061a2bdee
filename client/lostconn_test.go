package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
)

type appendOK struct {
	eventstorev1connect.UnimplementedEventStoreHandler
}

func (appendOK) Append(context.Context, *connect.Request[eventstorev1.AppendRequest]) (*connect.Response[eventstorev1.AppendResponse], error) {
	return connect.NewResponse(&eventstorev1.AppendResponse{FirstRevision: 7, LastRevision: 7}), nil
}

// startCutting serves Append so that its first cut calls begin a reply and
// then lose their connection, as when the server is killed mid-reply; later
// calls are answered. It returns the server and the number of calls made.
func startCutting(t *testing.T, cut int) (*httptest.Server, func() int) {
	t.Helper()
	path, handler := eventstorev1connect.NewEventStoreHandler(appendOK{})
	var mu sync.Mutex
	calls := 0
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n > cut {
			handler.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/proto")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte{0x08}) // the start of a message, never finished
		w.(http.Flusher).Flush()
		srv.CloseClientConnections()
		<-r.Context().Done()
	})
	srv = httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return calls }
}

// TestLostConnectionIsUnavailable: a call whose connection dies after the
// reply began is reported as UNAVAILABLE (connect says UNKNOWN) and tried
// again, so an append through a node killed mid-reply is retried with its
// event ids rather than failing as if the server had refused it.
func TestLostConnectionIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := EventData{ID: "0b4f3a3e-6c1e-4a57-9c55-8f0a4bd2f0a1", Type: "Tick"}

	srv, calls := startCutting(t, 1)
	once, err := New(srv.URL, WithRetry(1, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	_, err = once.Append(ctx, "t", "s", Any, ev)
	if code := connect.CodeOf(err); code != connect.CodeUnavailable {
		t.Fatalf("append cut mid-reply: code %v (%v), want unavailable", code, err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("append cut mid-reply: %v is no connect error", err)
	}

	srv, calls = startCutting(t, 2)
	c, err := New(srv.URL, WithRetry(3, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Append(ctx, "t", "s", Any, ev)
	if err != nil || res.LastRevision != 7 {
		t.Fatalf("append cut twice then answered: %+v, %v", res, err)
	}
	if n := calls(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}

	// A call the caller cancelled stays cancelled.
	gone, cancelGone := context.WithCancel(ctx)
	cancelGone()
	if _, err := c.Append(gone, "t", "s", Any, ev); connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("cancelled append: %v", err)
	}
}
