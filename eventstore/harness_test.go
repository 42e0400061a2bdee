package eventstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// node is one in-process server on a data directory that outlives restarts.
type node struct {
	t      *testing.T
	fsys   vfs.FS // vfs.Default() unless a test gives another
	dir    string
	srv    *server.Server
	client eventstorev1connect.EventStoreClient
	// configure, when set, adjusts the server's config at each start.
	configure func(*server.Config)
}

func startNode(t *testing.T) *node {
	t.Helper()
	return startNodeFS(t, vfs.Default())
}

// startNodeFS starts a node whose data directory is reached through fsys.
func startNodeFS(t *testing.T, fsys vfs.FS) *node {
	t.Helper()
	n := &node{t: t, fsys: fsys, dir: t.TempDir()}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = n.dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	if n.configure != nil {
		n.configure(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	srv, err := server.Start(cfg, n.fsys, logger)
	if err != nil {
		n.t.Fatal(err)
	}
	n.srv = srv
	// HTTP/2 without TLS, as gRPC clients speak it, so streaming calls run
	// the way they do in production.
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	httpClient := &http.Client{Transport: &http.Transport{Protocols: protocols}}
	n.client = eventstorev1connect.NewEventStoreClient(httpClient, "http://"+srv.HTTPAddr(), connect.WithGRPC())
}

func (n *node) stop() {
	if n.srv != nil {
		if err := n.srv.Close(); err != nil {
			n.t.Errorf("close: %v", err)
		}
		n.srv = nil
	}
}

func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// removeIndexes deletes every partition's stream index (the node must be stopped).
func (n *node) removeIndexes() int {
	n.t.Helper()
	dirs, err := filepath.Glob(filepath.Join(n.dir, "*", "stream-index"))
	if err != nil {
		n.t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			n.t.Fatal(err)
		}
	}
	return len(dirs)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func exact(rev uint64) *eventstorev1.ExpectedRevision {
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: rev}}
}

func noStream() *eventstorev1.ExpectedRevision {
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
}

func ev(typ, data string) *eventstorev1.Event {
	return &eventstorev1.Event{Type: typ, Data: []byte(data)}
}

func (n *node) append(ctx context.Context, topic, stream string, expected *eventstorev1.ExpectedRevision, events ...*eventstorev1.Event) (*eventstorev1.AppendResponse, error) {
	resp, err := n.client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: topic, Stream: stream, ExpectedRevision: expected, Events: events}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func (n *node) mustAppend(ctx context.Context, topic, stream string, expected *eventstorev1.ExpectedRevision, events ...*eventstorev1.Event) *eventstorev1.AppendResponse {
	n.t.Helper()
	resp, err := n.append(ctx, topic, stream, expected, events...)
	if err != nil {
		n.t.Fatalf("append to %s/%s: %v", topic, stream, err)
	}
	return resp
}

// readAll reads a stream forwards to its end.
func (n *node) readAll(ctx context.Context, topic, stream string) []*eventstorev1.RecordedEvent {
	n.t.Helper()
	var out []*eventstorev1.RecordedEvent
	var from *uint64
	for {
		resp, err := n.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: topic, Stream: stream, FromRevision: from, MaxCount: 500}))
		if err != nil {
			n.t.Fatalf("read %s/%s: %v", topic, stream, err)
		}
		out = append(out, resp.Msg.Events...)
		if resp.Msg.EndOfStream || len(resp.Msg.Events) == 0 {
			return out
		}
		next := resp.Msg.Events[len(resp.Msg.Events)-1].Revision + 1
		from = &next
	}
}

// wrongRevision returns the WrongExpectedRevision detail of err, or nil.
func wrongRevision(err error) *eventstorev1.WrongExpectedRevision {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if w, ok := v.(*eventstorev1.WrongExpectedRevision); ok {
			return w
		}
	}
	return nil
}

func revisions(events []*eventstorev1.RecordedEvent) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Revision
	}
	return out
}

func contiguous(revs []uint64, from uint64) bool {
	for i, r := range revs {
		if r != from+uint64(i) {
			return false
		}
	}
	return true
}
