package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
)

func events(typ string, n int) []EventData {
	out := make([]EventData, n)
	for i := range out {
		out[i] = EventData{Type: typ, Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	return out
}

func revisions(evs []RecordedEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Revision
	}
	return out
}

// TestAppendAndRead: appended events read back with their attributes,
// forwards, backwards, from a revision, bounded, and page by page.
func TestAppendAndRead(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	first := EventData{ID: uuid.NewString(), Type: "OrderPlaced", Data: []byte(`{"sku":"a"}`), Metadata: map[string]string{"tenant": "t1"}}
	res, err := c.Append(ctx, "orders", "order-1", NoStream, first)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstRevision != 0 || res.LastRevision != 0 || res.Duplicate || res.Position.Partition != 0 {
		t.Fatalf("first append: %+v", res)
	}
	res, err = c.Append(ctx, "orders", "order-1", Exact(0), events("ItemAdded", 4)...)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstRevision != 1 || res.LastRevision != 4 {
		t.Fatalf("second append: %+v", res)
	}

	page, err := c.ReadStream(ctx, "orders", "order-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(page.Events); !slices.Equal(got, []uint64{0, 1, 2, 3, 4}) || !page.EndOfStream || page.LastRevision != 4 {
		t.Fatalf("forwards: revisions %v end %v last %d", got, page.EndOfStream, page.LastRevision)
	}
	ev := page.Events[0]
	if ev.ID != first.ID || ev.Type != "OrderPlaced" || string(ev.Data) != `{"sku":"a"}` || ev.Metadata["tenant"] != "t1" ||
		ev.ContentType != "application/json" || ev.Topic != "orders" || ev.Stream != "order-1" || ev.Source == "" ||
		time.Since(ev.Time) > time.Minute {
		t.Fatalf("event read back: %+v", ev)
	}
	if page.Events[4].Position.Offset != res.Position.Offset {
		t.Fatalf("last event at %v, append said %v", page.Events[4].Position, res.Position)
	}

	page, err = c.ReadStream(ctx, "orders", "order-1", Backwards(), MaxCount(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(page.Events); !slices.Equal(got, []uint64{4, 3}) || page.EndOfStream {
		t.Fatalf("backwards max 2: %v end %v", got, page.EndOfStream)
	}
	page, err = c.ReadStream(ctx, "orders", "order-1", FromRevision(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(page.Events); !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("from 3: %v", got)
	}

	for _, tc := range []struct {
		name string
		opts []ReadOption
		want []uint64
	}{
		{"forwards in pages of 2", []ReadOption{MaxCount(2)}, []uint64{0, 1, 2, 3, 4}},
		{"backwards in pages of 2 from 3", []ReadOption{MaxCount(2), Backwards(), FromRevision(3)}, []uint64{3, 2, 1, 0}},
		{"forwards from 2 in pages of 1", []ReadOption{MaxCount(1), FromRevision(2)}, []uint64{2, 3, 4}},
	} {
		var got []uint64
		for ev, err := range c.ReadStreamAll(ctx, "orders", "order-1", tc.opts...) {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got = append(got, ev.Revision)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWrongExpectedRevisionError: each kind of failed check carries the
// stream, the expectation and the actual revision (-1 for none), and
// nothing of the refused append is written.
func TestWrongExpectedRevisionError(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	check := func(name string, err error, expected Expected, actual int64) {
		t.Helper()
		var wrong *WrongExpectedRevisionError
		if !errors.As(err, &wrong) {
			t.Fatalf("%s: %v is not a *WrongExpectedRevisionError", name, err)
		}
		if wrong.Topic != "accounts" || wrong.Stream != "acc-1" || wrong.Expected != expected || wrong.Actual != actual {
			t.Fatalf("%s: %+v, want expected %s actual %d", name, wrong, expected, actual)
		}
		if !errors.Is(err, ErrWrongExpectedRevision) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("%s: %v does not wrap the sentinel and the connect error", name, err)
		}
	}
	_, err := c.Append(ctx, "accounts", "acc-1", Exact(0), events("Opened", 1)...)
	check("exact on a new stream", err, Exact(0), -1)
	_, err = c.Append(ctx, "accounts", "acc-1", StreamExists, events("Opened", 1)...)
	check("exists on a new stream", err, StreamExists, -1)

	if _, err := c.Append(ctx, "accounts", "acc-1", NoStream, events("Opened", 2)...); err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(ctx, "accounts", "acc-1", NoStream, events("Opened", 1)...)
	check("no-stream on a stream at 1", err, NoStream, 1)
	_, err = c.Append(ctx, "accounts", "acc-1", Exact(0), events("Deposited", 3)...)
	check("exact 0 on a stream at 1", err, Exact(0), 1)

	page, err := c.ReadStream(ctx, "accounts", "acc-1")
	if err != nil {
		t.Fatal(err)
	}
	if page.LastRevision != 1 || len(page.Events) != 2 {
		t.Fatalf("refused appends wrote something: last %d, %d events", page.LastRevision, len(page.Events))
	}
	if _, err := c.Append(ctx, "accounts", "acc-1", ExpectedAfter(page.LastRevision), events("Deposited", 1)...); err != nil {
		t.Fatalf("append at the read revision: %v", err)
	}
}

// dropFirstAppendAnswer forwards requests but, for the first Append, reads
// the server's whole answer and then fails as if the connection broke: the
// append is written, and the client does not know.
type dropFirstAppendAnswer struct {
	next    http.RoundTripper
	dropped atomic.Int32
}

func (d *dropFirstAppendAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/Append") || d.dropped.Add(1) != 1 {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return nil, errors.New("connection reset (injected)")
}

// TestIdempotentRetry: re-sending an append's event ids answers the original
// revisions with Duplicate set, and the client's own retry after a lost
// answer writes nothing twice.
func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	rt := &dropFirstAppendAnswer{next: newHTTPClient("http", nil).Transport}
	c := startServer(t, WithHTTPClient(&http.Client{Transport: rt}), WithRetry(3, time.Millisecond))
	t.Cleanup(rt.next.(*http.Transport).CloseIdleConnections)
	ctx := testContext(t)

	// The first append's answer is lost; the client tries again with the
	// same ids and gets the original result.
	res, err := c.Append(ctx, "carts", "cart-1", NoStream, events("ItemAdded", 2)...)
	if err != nil {
		t.Fatalf("append with a lost answer: %v", err)
	}
	if rt.dropped.Load() < 2 {
		t.Fatalf("the transport saw %d appends; the lost answer was not retried", rt.dropped.Load())
	}
	if !res.Duplicate || res.FirstRevision != 0 || res.LastRevision != 1 {
		t.Fatalf("retried append: %+v, want revisions 0-1 marked duplicate", res)
	}

	evs := []EventData{{ID: uuid.NewString(), Type: "ItemRemoved"}, {ID: uuid.NewString(), Type: "ItemAdded"}}
	orig, err := c.Append(ctx, "carts", "cart-1", Exact(1), evs...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Append(ctx, "carts", "cart-1", Exact(1), evs...)
	if err != nil {
		t.Fatalf("same ids again: %v", err)
	}
	if !again.Duplicate || again.FirstRevision != orig.FirstRevision || again.LastRevision != orig.LastRevision || again.Position != orig.Position {
		t.Fatalf("repeat %+v, original %+v", again, orig)
	}
	page, err := c.ReadStream(ctx, "carts", "cart-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(page.Events); !slices.Equal(got, []uint64{0, 1, 2, 3}) {
		t.Fatalf("stream holds revisions %v; a retry wrote twice", got)
	}
}

// TestNotFoundAndDeleted: missing streams and topics, soft and hard deletes
// map to the sentinels and to the stream's state.
func TestNotFoundAndDeleted(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	_, err := c.ReadStream(ctx, "nowhere", "s")
	if !errors.Is(err, ErrStreamNotFound) || !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("stream of a missing topic: %v", err)
	}
	if _, err := c.ReadTopic(ctx, "nowhere"); !errors.Is(err, ErrTopicNotFound) || errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("read of a missing topic: %v", err)
	}
	if _, err := c.Append(ctx, "users", "u-1", NoStream, events("Registered", 2)...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadStream(ctx, "users", "u-2"); !errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("missing stream: %v", err)
	}

	if _, err := c.DeleteStream(ctx, "users", "u-1", SoftDelete, Exact(0)); !errors.Is(err, ErrWrongExpectedRevision) {
		t.Fatalf("delete with a wrong expectation: %v", err)
	}
	if _, err := c.DeleteStream(ctx, "users", "u-1", SoftDelete, Exact(1)); err != nil {
		t.Fatal(err)
	}
	page, err := c.ReadStream(ctx, "users", "u-1")
	if err != nil {
		t.Fatalf("read after soft delete: %v", err)
	}
	if len(page.Events) != 0 || page.LastRevision != 1 {
		t.Fatalf("soft-deleted stream shows %d events, last %d", len(page.Events), page.LastRevision)
	}
	res, err := c.Append(ctx, "users", "u-1", NoStream, events("Registered", 1)...)
	if err != nil || res.FirstRevision != 2 {
		t.Fatalf("append after soft delete: %+v %v (revisions continue at 2)", res, err)
	}

	if _, err := c.DeleteStream(ctx, "users", "u-1", HardDelete, Any); err != nil {
		t.Fatal(err)
	}
	info, err := c.GetStreamMetadata(ctx, "users", "u-1")
	if err != nil || !info.HardDeleted {
		t.Fatalf("metadata after hard delete: %+v %v", info, err)
	}
	if _, err := c.ReadStream(ctx, "users", "u-1"); !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("read after hard delete: %v", err)
	}
	if _, err := c.Append(ctx, "users", "u-1", Any, events("Registered", 1)...); !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("append after hard delete: %v", err)
	}
	sub, err := c.Subscribe(ctx, "users", "u-1")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Recv(); !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("subscribe after hard delete: %v", err)
	}
}

// TestStreamMetadata: bounds round-trip and reads honour them.
func TestStreamMetadata(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	if _, err := c.Append(ctx, "sensors", "s-1", Any, events("Measured", 5)...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetStreamMetadata(ctx, "sensors", "s-1", StreamMetadata{MaxCount: new(uint64(2)), MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	info, err := c.GetStreamMetadata(ctx, "sensors", "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Metadata.MaxCount == nil || *info.Metadata.MaxCount != 2 || info.Metadata.MaxAge != time.Hour ||
		info.Metadata.TruncateBefore != nil || info.LastRevision != 4 || info.SoftDeleted || info.HardDeleted {
		t.Fatalf("metadata: %+v", info)
	}
	page, err := c.ReadStream(ctx, "sensors", "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := revisions(page.Events); !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("max count 2 shows %v", got)
	}
	if _, err := c.SetStreamMetadata(ctx, "sensors", "s-1", StreamMetadata{}); err != nil {
		t.Fatal(err)
	}
	if info, err = c.GetStreamMetadata(ctx, "sensors", "s-1"); err != nil || info.Metadata != (StreamMetadata{}) {
		t.Fatalf("cleared metadata: %+v %v", info, err)
	}
}

// TestReadTopic: a topic reads in log order, continues from Next, and
// filters by type and stream prefix.
func TestReadTopic(t *testing.T) {
	t.Parallel()
	c := startServer(t)
	ctx := testContext(t)
	for i := range 3 {
		stream := fmt.Sprintf("order-%d", i)
		if _, err := c.Append(ctx, "shop", stream, NoStream, EventData{Type: "OrderPlaced"}, EventData{Type: "OrderPaid"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Append(ctx, "shop", "cust-1", NoStream, EventData{Type: "CustomerJoined"}); err != nil {
		t.Fatal(err)
	}
	page, err := c.ReadTopic(ctx, "shop", MaxCount(4))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 4 || page.EndOfTopic || len(page.Next) != 1 || page.Next[0].Offset != 4 {
		t.Fatalf("first page: %d events, end %v, next %v", len(page.Events), page.EndOfTopic, page.Next)
	}
	rest, err := c.ReadTopic(ctx, "shop", FromPositions(page.Next...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Events) != 3 || !rest.EndOfTopic || rest.Events[2].Stream != "cust-1" {
		t.Fatalf("second page: %+v", rest)
	}
	paid, err := c.ReadTopic(ctx, "shop", WithFilter(Filter{EventTypePrefix: "OrderP", EventTypeRegex: "Paid$", StreamPrefix: "order-"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(paid.Events) != 3 || paid.Next[0].Offset != 7 {
		t.Fatalf("filtered: %d events, next %v", len(paid.Events), paid.Next)
	}
	for _, ev := range paid.Events {
		if ev.Type != "OrderPaid" {
			t.Fatalf("filter let %s through", ev.Type)
		}
	}
	if _, err := c.ReadTopic(ctx, "shop", WithFilter(Filter{EventTypeRegex: "("})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad regex: %v", err)
	}
}

// TestOptionsRefused: an option a call does not take is an error, not
// silently ignored.
func TestOptionsRefused(t *testing.T) {
	t.Parallel()
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := c.ReadStream(ctx, "t", "s", FromPositions(Position{})); err == nil {
		t.Error("ReadStream took FromPositions")
	}
	if _, err := c.ReadTopic(ctx, "t", Backwards()); err == nil {
		t.Error("ReadTopic took Backwards")
	}
	if _, err := c.Subscribe(ctx, "t", "", FromRevision(1)); err == nil {
		t.Error("a topic subscription took FromRevision")
	}
	if _, err := c.Subscribe(ctx, "t", "s", FromEnd(), FromRevision(1)); err == nil {
		t.Error("FromEnd with FromRevision was taken")
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := New("http://x", WithRetry(0, 0)); err == nil {
		t.Error("zero attempts accepted")
	}
}
