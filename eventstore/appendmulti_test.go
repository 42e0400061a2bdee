package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
)

func part(topic, stream string, expected *eventstorev1.ExpectedRevision, events ...*eventstorev1.Event) *eventstorev1.AppendPart {
	return &eventstorev1.AppendPart{Topic: topic, Stream: stream, ExpectedRevision: expected, Events: events}
}

func (n *node) appendMulti(ctx context.Context, parts ...*eventstorev1.AppendPart) (*eventstorev1.AppendMultiResponse, error) {
	resp, err := n.client.AppendMulti(ctx, connect.NewRequest(&eventstorev1.AppendMultiRequest{Parts: parts}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// partMismatches is the WrongExpectedRevisions detail of an AppendMulti's
// error, nil when it has none.
func partMismatches(err error) []*eventstorev1.PartMismatch {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if w, ok := v.(*eventstorev1.WrongExpectedRevisions); ok {
				return w.GetParts()
			}
		}
	}
	return nil
}

// TestAppendMultiAllOrNothing: an AppendMulti over two topics writes every
// part at its expected revision; one whose expectations fail writes
// nothing and names each failed part with its stream's actual revision;
// a retry with the same event ids is answered as a duplicate.
func TestAppendMultiAllOrNothing(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	first := []*eventstorev1.AppendPart{
		part("orders", "order-1", noStream(), &eventstorev1.Event{Id: "5b0c7f0e-8a0e-4c55-9b5c-1f5d3c1e0a01", Type: "Placed", Data: []byte(`{}`)}),
		part("stock", "sku-1", noStream(), &eventstorev1.Event{Id: "5b0c7f0e-8a0e-4c55-9b5c-1f5d3c1e0a02", Type: "Reserved", Data: []byte(`{}`)},
			&eventstorev1.Event{Id: "5b0c7f0e-8a0e-4c55-9b5c-1f5d3c1e0a03", Type: "Reserved", Data: []byte(`{}`)}),
	}
	resp, err := n.appendMulti(ctx, first...)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetParts(); len(got) != 2 || got[0].GetLastRevision() != 0 || got[1].GetFirstRevision() != 0 || got[1].GetLastRevision() != 1 || resp.GetDuplicate() {
		t.Fatalf("AppendMulti answered %v", resp)
	}
	if evs := n.readAll(ctx, "stock", "sku-1"); len(evs) != 2 {
		t.Fatalf("sku-1 has %d events, want 2", len(evs))
	}

	_, err = n.appendMulti(ctx,
		part("orders", "order-1", exact(0), ev("Paid", `{}`)),
		part("stock", "sku-1", exact(5), ev("Reserved", `{}`)),
		part("orders", "order-2", &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_StreamExists{StreamExists: true}}, ev("Paid", `{}`)))
	ms := partMismatches(err)
	if len(ms) != 2 || ms[0].GetPart() != 1 || ms[0].GetTopic() != "stock" || ms[0].GetMismatch().ActualRevision == nil || *ms[0].GetMismatch().ActualRevision != 1 ||
		ms[1].GetPart() != 2 || ms[1].GetMismatch().GetStream() != "order-2" || ms[1].GetMismatch().ActualRevision != nil {
		t.Fatalf("failed AppendMulti: %v, mismatches %v", err, ms)
	}
	if evs := n.readAll(ctx, "orders", "order-1"); len(evs) != 1 {
		t.Fatalf("order-1 has %d events after a failed AppendMulti, want 1", len(evs))
	}
	// The aborted part left its stream free and at its revision.
	n.mustAppend(ctx, "orders", "order-1", exact(0), ev("Paid", `{}`))

	resp, err = n.appendMulti(ctx, first...)
	if err != nil || !resp.GetDuplicate() || resp.GetParts()[1].GetLastRevision() != 1 {
		t.Fatalf("retried AppendMulti: %v, %v", resp, err)
	}
}

// TestAppendMultiConcurrentWriters: writers race AppendMultis over two
// overlapping streams, each expecting the revisions it read; every winner
// writes both streams at the revisions it expected, so the two streams
// hold the same writers' events in the same order, and no event of a
// losing call is anywhere.
func TestAppendMultiConcurrentWriters(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	const writers, tries = 6, 15
	revision := func(topic, stream string) *eventstorev1.ExpectedRevision {
		evs := n.readAll(ctx, topic, stream)
		if len(evs) == 0 {
			return noStream()
		}
		return exact(evs[len(evs)-1].GetRevision())
	}
	if _, err := n.appendMulti(ctx, part("orders", "x", noStream(), ev("E", "{}")), part("stock", "y", noStream(), ev("E", "{}"))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 1
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tries {
				data := fmt.Sprintf(`{"writer":%d,"try":%d}`, w, i)
				_, err := n.appendMulti(ctx,
					part("orders", "x", revision("orders", "x"), ev("E", data)),
					part("stock", "y", revision("stock", "y"), ev("E", data)))
				mu.Lock()
				switch {
				case err == nil:
					won++
				case partMismatches(err) != nil:
				default:
					t.Errorf("writer %d: %v", w, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	x, y := n.readAll(ctx, "orders", "x"), n.readAll(ctx, "stock", "y")
	if len(x) != won || len(y) != won || won == 0 {
		t.Fatalf("%d winners, x has %d events, y %d", won, len(x), len(y))
	}
	dataOf := func(evs []*eventstorev1.RecordedEvent) []string {
		var out []string
		for i, e := range evs {
			if e.GetRevision() != uint64(i) {
				t.Fatalf("event %d at revision %d", i, e.GetRevision())
			}
			out = append(out, string(e.GetData()))
		}
		return out
	}
	if dx, dy := dataOf(x), dataOf(y); !slices.Equal(dx, dy) {
		t.Fatalf("streams differ:\nx %v\ny %v", dx, dy)
	}
}

// TestAppendMultiReadCommitted: a Kafka consumer with read_committed sees
// the events of committed AppendMultis and never those of an aborted one,
// which a read_uncommitted consumer does see (its part was written, then
// aborted by the other part's failed expectation).
func TestAppendMultiReadCommitted(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.appendMulti(ctx, part("orders", "a", noStream(), ev("E", `{}`)), part("stock", "b", noStream(), ev("E", `{}`))); err != nil {
		t.Fatal(err)
	}
	if _, err := n.appendMulti(ctx, part("orders", "aborted", noStream(), ev("E", `{}`)), part("stock", "b", noStream(), ev("E", `{}`))); partMismatches(err) == nil {
		t.Fatalf("AppendMulti with a failed part: %v", err)
	}
	if _, err := n.appendMulti(ctx, part("orders", "last", noStream(), ev("E", `{}`)), part("stock", "b", exact(0), ev("E", `{}`))); err != nil {
		t.Fatal(err)
	}
	keys := func(level kgo.IsolationLevel) []string {
		cl := kafkaClient(t, n, kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level))
		var out []string
		for ctx.Err() == nil && !slices.Contains(out, "last") {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, string(r.Key)) })
		}
		slices.Sort(out)
		return out
	}
	if got := keys(kgo.ReadCommitted()); !slices.Equal(got, []string{"a", "last"}) {
		t.Fatalf("read_committed saw %v, want [a last]", got)
	}
	if got := keys(kgo.ReadUncommitted()); !slices.Equal(got, []string{"a", "aborted", "last"}) {
		t.Fatalf("read_uncommitted saw %v, want [a aborted last]", got)
	}
}

// TestAppendMultiSlotsFencedAtStart: a node that ran AppendMultis gives
// every slot's transactional id a new epoch when it starts again, so what
// a crash left open is aborted at once rather than at its timeout.
func TestAppendMultiSlotsFencedAtStart(t *testing.T) {
	n := startNode(t)
	ctx := ctxT(t)
	if _, err := n.appendMulti(ctx, part("orders", "a", noStream(), ev("E", `{}`))); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("__cairn-append-multi-%d-%d", n.srv.Cluster().NodeID(), i)
	}
	describe := func() kadm.DescribedTransactions {
		t.Helper()
		described, err := kadm.NewClient(kafkaClient(t, n)).DescribeTransactions(ctx, ids...)
		if err != nil && !errors.As(err, new(*kadm.ShardErrors)) {
			t.Fatal(err)
		}
		return described
	}
	before := describe()[ids[0]].ProducerEpoch
	n.stop()
	n.start()
	for {
		after := describe()
		fenced := 0
		for _, id := range ids {
			if d, ok := after[id]; ok && d.Err == nil && (id != ids[0] || d.ProducerEpoch > before) {
				fenced++
			}
		}
		if fenced == len(ids) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d slots fenced after the restart: %+v", fenced, len(ids), after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
