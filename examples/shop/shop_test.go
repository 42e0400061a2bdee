package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/pgtest"
	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// pg is the PostgreSQL server of this test binary.
var pg pgtest.Cluster

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// waitTimeout bounds every wait for the projection to catch up.
const waitTimeout = 20 * time.Second

// shop is a Cairn server, a client of it, and a read model.
type shop struct {
	t     *testing.T
	url   string
	store *client.Client
	rm    *readModel
}

// readModel is a database the inventory projects into.
type readModel struct {
	t   *testing.T
	dsn string
	db  *sql.DB
}

func newReadModel(t *testing.T) *readModel {
	t.Helper()
	dsn := pg.CreateDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &readModel{t: t, dsn: dsn, db: db}
}

func newShop(t *testing.T) *shop {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	s := &shop{t: t, url: "http://" + srv.HTTPAddr(), rm: newReadModel(t)}
	s.store = s.client()
	return s
}

func (s *shop) client(opts ...client.Option) *client.Client {
	s.t.Helper()
	c, err := client.New(s.url, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(c.Close)
	return c
}

// cmd runs a shop command line as the binary would, against the server.
func (s *shop) cmd(args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), waitTimeout)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, append(args, "--server", s.url), &out, io.Discard)
	return out.String(), err
}

func (s *shop) mustCmd(args ...string) string {
	s.t.Helper()
	out, err := s.cmd(args...)
	if err != nil {
		s.t.Fatalf("shop %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// crasher is a client whose first OrderRejected append, once armed, is
// written and then "crashes" the projection: its context is cancelled
// before the handler can record the rejection and commit. That is the
// window between the two writes the projection cannot make atomic.
type crasher struct {
	client  *client.Client
	cancel  atomic.Pointer[context.CancelFunc]
	crashed chan struct{}
}

func (s *shop) crasher() *crasher {
	c := &crasher{crashed: make(chan struct{})}
	afterReject := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			resp, err := next(ctx, req)
			m, ok := req.Any().(*eventstorev1.AppendRequest)
			if err == nil && ok && m.GetTopic() == OrdersTopic && slices.ContainsFunc(m.GetEvents(), func(e *eventstorev1.Event) bool {
				return e.GetType() == TypeOrderRejected
			}) {
				if cancel := c.cancel.Swap(nil); cancel != nil {
					(*cancel)()
					close(c.crashed)
				}
			}
			return resp, err
		}
	})
	c.client = s.client(client.WithConnectOptions(connect.WithInterceptors(afterReject)))
	return c
}

func (c *crasher) arm(cancel context.CancelFunc) { c.cancel.Store(&cancel) }

func (c *crasher) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.crashed:
	case <-time.After(waitTimeout):
		t.Fatal("the projection never appended a rejection")
	}
}

// running is a projection run in a goroutine.
type running struct {
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

// start runs the inventory projection into rm (both runners, or the one
// pick chooses) with store, logging to log.
func (s *shop) start(store *client.Client, rm *readModel, log io.Writer, pick func(*inventory) func(context.Context) error) *running {
	s.t.Helper()
	inv, err := newInventory(s.t.Context(), store, rm.db, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	runFunc := inv.Run
	if pick != nil {
		runFunc = pick(inv)
	}
	ctx, cancel := context.WithCancel(s.t.Context())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- runFunc(ctx) }()
	s.t.Cleanup(func() { r.stop(s.t) })
	return r
}

// stop cancels the projection (a kill, as far as the read model can
// tell: what is not committed is lost) and waits for it to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("projection: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("the projection did not stop")
		}
	})
}

func (s *shop) waitFor(what string, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %s for %s; last seen: %s", waitTimeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rm *readModel) stock(sku string) Stock {
	rm.t.Helper()
	var st Stock
	err := rm.db.QueryRow(`SELECT available, reserved FROM stock WHERE sku = $1`, sku).Scan(&st.Available, &st.Reserved)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		rm.t.Fatal(err)
	}
	return st
}

// orders is the read model's orders: id → status, and reason if any.
func (rm *readModel) orders() map[string]string {
	rm.t.Helper()
	rows, err := rm.db.Query(`SELECT order_id, status, reason FROM orders`)
	if err != nil {
		rm.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, status, reason string
		if err := rows.Scan(&id, &status, &reason); err != nil {
			rm.t.Fatal(err)
		}
		out[id] = strings.TrimSuffix(status+": "+reason, ": ")
	}
	if err := rows.Err(); err != nil {
		rm.t.Fatal(err)
	}
	return out
}

// checkpoint is the projection's stored next offset in partition 0, -1
// when it has none.
func (rm *readModel) checkpoint(projectionName string) int64 {
	rm.t.Helper()
	next := int64(-1)
	err := rm.db.QueryRow(`SELECT next_offset FROM cairn_projection_checkpoints WHERE projection = $1 AND partition = 0`, projectionName).Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		rm.t.Fatal(err)
	}
	return next
}

// readTopic reads a whole topic (events of one type, when eventType is
// set) and returns them and where the topic ends.
func (s *shop) readTopic(topic, eventType string) ([]client.RecordedEvent, []client.Position) {
	s.t.Helper()
	var out []client.RecordedEvent
	var from []client.Position
	for range 100 {
		var opts []client.ReadOption
		if eventType != "" {
			opts = append(opts, client.WithFilter(client.Filter{EventTypeRegex: "^" + eventType + "$"}))
		}
		if len(from) > 0 {
			opts = append(opts, client.FromPositions(from...))
		}
		page, err := s.store.ReadTopic(s.t.Context(), topic, opts...)
		if err != nil {
			s.t.Fatalf("read %s: %v", topic, err)
		}
		out = append(out, page.Events...)
		from = page.Next
		if page.EndOfTopic {
			return out, from
		}
	}
	s.t.Fatalf("read %s: no end after 100 pages", topic)
	return nil, nil
}

func (s *shop) events(topic, eventType string) []client.RecordedEvent {
	s.t.Helper()
	events, _ := s.readTopic(topic, eventType)
	return events
}

// topicEnd is where a projection's checkpoint on the topic's only
// partition may stand once it applied every event: from the offset after
// the last event to the end, past the COMMIT marker of an AppendMulti
// that may follow it.
func (s *shop) topicEnd(topic string) (lo, hi int64) {
	s.t.Helper()
	events, end := s.readTopic(topic, "")
	if len(end) != 1 {
		s.t.Fatalf("%s ends at %v: want one partition", topic, end)
	}
	lo = end[0].Offset
	if len(events) > 0 {
		lo = events[len(events)-1].Position.Offset + 1
	}
	return lo, end[0].Offset
}

func (s *shop) streamTypes(topic, stream string) []string {
	s.t.Helper()
	var types []string
	for ev, err := range s.store.ReadStreamAll(s.t.Context(), topic, stream) {
		if err != nil {
			s.t.Fatalf("read %s/%s: %v", topic, stream, err)
		}
		types = append(types, ev.Type)
	}
	return types
}

// caughtUp waits until both runners' checkpoints in rm are at their
// topics' ends.
func (s *shop) caughtUp(rm *readModel) {
	s.t.Helper()
	s.waitFor("the projection to reach the end of both topics", func() (bool, string) {
		orders, stock := rm.checkpoint(ordersProjection), rm.checkpoint(stockProjection)
		ordersLo, ordersHi := s.topicEnd(OrdersTopic)
		stockLo, stockHi := s.topicEnd(InventoryTopic)
		return ordersLo <= orders && orders <= ordersHi && stockLo <= stock && stock <= stockHi,
			fmt.Sprintf("orders at %d of %d-%d, stock at %d of %d-%d", orders, ordersLo, ordersHi, stock, stockLo, stockHi)
	})
}

func (s *shop) noDeadLetters() {
	s.t.Helper()
	for _, topic := range []string{OrdersTopic + ".dlq", InventoryTopic + ".dlq"} {
		if _, err := s.store.ReadTopic(s.t.Context(), topic); !errors.Is(err, client.ErrTopicNotFound) {
			s.t.Errorf("dead-letter topic %s: %v, want it never created", topic, err)
		}
	}
}

// TestShop: three orders of one tea fill the three in stock, an order of
// two is rejected with an event on its stream, and the projection, killed
// between orders and again between appending that rejection and committing
// it, applies everything exactly once and appends exactly one rejection.
func TestShop(t *testing.T) {
	s := newShop(t)
	rm := s.rm
	if out := s.mustCmd("restock", "--sku", "tea", "--qty", "3"); !strings.Contains(out, "restocked tea: +3, 3 added in 1 restocks (shop.inventory/sku-tea revision 0)") {
		t.Fatalf("restock said %q", out)
	}
	first := s.start(s.store, rm, io.Discard, nil)
	// Orders are decided against the stock the projection has seen.
	s.waitFor("the restock", func() (bool, string) { st := rm.stock("tea"); return st == Stock{Available: 3}, fmt.Sprint(st) })
	s.mustCmd("place", "--order", "order-1", "--sku", "tea", "--qty", "1")
	s.mustCmd("place", "--order", "order-2", "--sku", "tea", "--qty", "1")
	s.waitFor("two reservations", func() (bool, string) { o := rm.orders(); return len(o) == 2, fmt.Sprint(o) })

	// Killed between events: orders keep coming, and the order service
	// refuses an order id used before without the projection.
	first.stop(t)
	s.mustCmd("place", "--order", "order-3", "--sku", "tea", "--qty", "1")
	if _, err := s.cmd("place", "--order", "order-2", "--sku", "tea", "--qty", "5"); !errors.Is(err, ErrAlreadyPlaced) ||
		!strings.Contains(err.Error(), "order order-2: already placed (shop.orders/order-2 is at revision 1)") {
		t.Fatalf("placing order-2 again: %v", err)
	}

	// Killed after the rejection is appended, before it is committed.
	crash := s.crasher()
	second := s.start(crash.client, rm, io.Discard, nil)
	crash.arm(second.cancel)
	s.mustCmd("place", "--order", "order-4", "--sku", "tea", "--qty", "2")
	crash.wait(t)
	second.stop(t)
	if got := rm.orders(); len(got) != 3 || got["order-4"] != "" {
		t.Fatalf("after the crash the read model has %v: the rejection of order-4 committed, so the crash tested nothing", got)
	}
	placed4 := s.placement("order-4")
	if got := rm.checkpoint(ordersProjection); got != placed4.Position.Offset {
		t.Fatalf("after the crash the orders checkpoint is %d, want %d (order-4's OrderPlaced again)", got, placed4.Position.Offset)
	}

	s.start(s.store, rm, io.Discard, nil)
	s.caughtUp(rm)

	if got, want := rm.stock("tea"), (Stock{Available: 0, Reserved: 3}); got != want {
		t.Errorf("stock of tea %+v, want %+v", got, want)
	}
	wantOrders := map[string]string{
		"order-1": "reserved", "order-2": "reserved", "order-3": "reserved",
		"order-4": "rejected: only 0 of tea available, 2 ordered",
	}
	if got := rm.orders(); !maps.Equal(got, wantOrders) {
		t.Errorf("orders %v, want %v", got, wantOrders)
	}
	if got := s.streamTypes(OrdersTopic, "order-4"); !slices.Equal(got, []string{TypeOrderPlaced, TypeOrderRejected}) {
		t.Errorf("order-4's stream holds %v", got)
	}
	rejections := s.events(OrdersTopic, TypeOrderRejected)
	if len(rejections) != 1 {
		t.Fatalf("%d rejections in %s, want 1: %+v", len(rejections), OrdersTopic, rejections)
	}
	if rejections[0].Stream != "order-4" || rejections[0].ID != DecisionID(placed4) {
		t.Errorf("the rejection is %s/%s id %s, want order-4 id %s", rejections[0].Topic, rejections[0].Stream, rejections[0].ID, DecisionID(placed4))
	}
	if got := len(s.events(OrdersTopic, TypeOrderReserved)); got != 3 {
		t.Errorf("%d reservations recorded, want 3", got)
	}
	// Each reservation took its stock in the same AppendMulti.
	if got, want := s.streamTypes(InventoryTopic, SKUStream("tea")), []string{TypeStockAdded, TypeStockReserved, TypeStockReserved, TypeStockReserved}; !slices.Equal(got, want) {
		t.Errorf("sku-tea's stream holds %v, want StockAdded then three StockReserved", got)
	}
	s.noDeadLetters()

	out := s.mustCmd("status", "--order", "order-4")
	for _, want := range []string{"shop.orders/order-4", "0 ", "OrderPlaced", `{"order_id":"order-4","sku":"tea","qty":2}`,
		"1 ", "OrderRejected", "status: rejected: only 0 of tea available, 2 ordered\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status of order-4 lacks %q:\n%s", want, out)
		}
	}
	if out := s.mustCmd("status", "--order", "order-1"); !strings.Contains(out, "status: reserved: 1 × tea\n") {
		t.Errorf("status of order-1:\n%s", out)
	}
	if _, err := s.cmd("status", "--order", "order-9"); err == nil || !strings.Contains(err.Error(), "never placed") {
		t.Errorf("status of an order never placed: %v", err)
	}
	out, err := s.cmd("stock", "--db", rm.dsn)
	if err != nil || !containsFields(out, "tea", "0", "3") || !containsFields(out, "order-4", "tea", "2", "rejected", "only", "0") {
		t.Errorf("stock: %v\n%s", err, out)
	}
}

// placement is the OrderPlaced event of an order.
func (s *shop) placement(orderID string) client.RecordedEvent {
	s.t.Helper()
	page, err := s.store.ReadStream(s.t.Context(), OrdersTopic, orderID, client.MaxCount(1))
	if err != nil || len(page.Events) != 1 || page.Events[0].Type != TypeOrderPlaced {
		s.t.Fatalf("placement of %s: %+v %v", orderID, page, err)
	}
	return page.Events[0]
}

// TestRecordedDecisionStands: a rejection appended just before a crash
// stands even when a restock applied in the meantime makes the replay
// decide otherwise: the store answers the replay's reservation, which has
// the same id, as a duplicate, and the projection applies the rejection.
func TestRecordedDecisionStands(t *testing.T) {
	s := newShop(t)
	rm := s.rm
	s.mustCmd("restock", "--sku", "tea", "--qty", "1")
	crash := s.crasher()
	first := s.start(crash.client, rm, io.Discard, nil)
	crash.arm(first.cancel)
	s.waitFor("the restock", func() (bool, string) { st := rm.stock("tea"); return st == Stock{Available: 1}, fmt.Sprint(st) })
	s.mustCmd("place", "--order", "order-a", "--sku", "tea", "--qty", "2")
	crash.wait(t)
	first.stop(t)

	s.mustCmd("restock", "--sku", "tea", "--qty", "5")
	var log testio.Buffer
	s.start(s.store, rm, &log, func(inv *inventory) func(context.Context) error { return inv.stock.Run })
	s.waitFor("the second restock", func() (bool, string) { st := rm.stock("tea"); return st == Stock{Available: 6}, fmt.Sprint(st) })
	s.start(s.store, rm, &log, func(inv *inventory) func(context.Context) error { return inv.orders.Run })
	s.caughtUp(rm)

	if got, want := rm.stock("tea"), (Stock{Available: 6}); got != want {
		t.Errorf("stock of tea %+v, want %+v", got, want)
	}
	if got, want := rm.orders(), map[string]string{"order-a": "rejected: only 1 of tea available, 2 ordered"}; !maps.Equal(got, want) {
		t.Errorf("orders %v, want %v", got, want)
	}
	if got := s.streamTypes(OrdersTopic, "order-a"); !slices.Equal(got, []string{TypeOrderPlaced, TypeOrderRejected}) {
		t.Errorf("order-a's stream holds %v", got)
	}
	// Proof that the replay took the path under test.
	if !strings.Contains(log.String(), `msg=rejected order=order-a sku=tea qty=2 reason="only 1 of tea available, 2 ordered" decided_earlier=true`) {
		t.Errorf("the replay did not apply the recorded rejection; log:\n%s", log.String())
	}
	s.noDeadLetters()
}

// TestSecondReadModel: a read model built afresh from the same topics —
// its orders runner racing ahead of its stock runner, and at a later
// time than the first's decisions — ends equal to the first, taking the
// recorded decisions, and adds no decision to the streams.
func TestSecondReadModel(t *testing.T) {
	s := newShop(t)
	s.mustCmd("restock", "--sku", "tea", "--qty", "3")
	s.start(s.store, s.rm, io.Discard, nil)
	s.waitFor("the restock", func() (bool, string) { st := s.rm.stock("tea"); return st == Stock{Available: 3}, fmt.Sprint(st) })
	for i, qty := range []string{"1", "1", "1", "2"} {
		s.mustCmd("place", "--order", fmt.Sprintf("order-%d", i+1), "--sku", "tea", "--qty", qty)
	}
	s.caughtUp(s.rm)
	decisions := len(s.events(OrdersTopic, "Order(Reserved|Rejected)"))
	if decisions != 4 {
		t.Fatalf("%d decisions recorded, want 4", decisions)
	}

	second := newReadModel(t)
	var log testio.Buffer
	s.start(s.store, second, &log, func(inv *inventory) func(context.Context) error { return inv.orders.Run })
	s.waitFor("the second read model's orders", func() (bool, string) {
		o := second.orders()
		return len(o) == 4, fmt.Sprint(o)
	})
	// Applied before the restock that they were decided on: overdrawn.
	if got, want := second.stock("tea"), (Stock{Available: -3, Reserved: 3}); got != want {
		t.Errorf("before its restocks, the second read model's tea is %+v, want %+v", got, want)
	}
	s.start(s.store, second, &log, func(inv *inventory) func(context.Context) error { return inv.stock.Run })
	s.caughtUp(second)

	if got, want := second.stock("tea"), s.rm.stock("tea"); got != want {
		t.Errorf("tea in the second read model %+v, in the first %+v", got, want)
	}
	if got, want := second.orders(), s.rm.orders(); !maps.Equal(got, want) {
		t.Errorf("orders in the second read model %v, in the first %v", got, want)
	}
	if got := len(s.events(OrdersTopic, "Order(Reserved|Rejected)")); got != decisions {
		t.Errorf("%d decisions recorded after the second read model, %d before", got, decisions)
	}
	if n := strings.Count(log.String(), "decided_earlier=true"); n != 4 {
		t.Errorf("the second read model took %d recorded decisions, want 4; log:\n%s", n, log.String())
	}
	s.noDeadLetters()
}

// TestRestocksNotYetProjected: orders placed after a restock are decided
// against it even when the stock runner has not applied it (here: has not
// started) — the walk-through's case of an inventory started after the
// shop's first events.
func TestRestocksNotYetProjected(t *testing.T) {
	s := newShop(t)
	s.mustCmd("restock", "--sku", "tea", "--qty", "2")
	s.mustCmd("restock", "--sku", "tea", "--qty", "1")
	for i, qty := range []string{"1", "1", "2"} {
		s.mustCmd("place", "--order", fmt.Sprintf("order-%d", i+1), "--sku", "tea", "--qty", qty)
	}
	s.start(s.store, s.rm, io.Discard, func(inv *inventory) func(context.Context) error { return inv.orders.Run })
	s.waitFor("the orders", func() (bool, string) { o := s.rm.orders(); return len(o) == 3, fmt.Sprint(o) })
	want := map[string]string{"order-1": "reserved", "order-2": "reserved", "order-3": "rejected: only 1 of tea available, 2 ordered"}
	if got := s.rm.orders(); !maps.Equal(got, want) {
		t.Errorf("orders %v, want %v", got, want)
	}
	s.start(s.store, s.rm, io.Discard, func(inv *inventory) func(context.Context) error { return inv.stock.Run })
	s.caughtUp(s.rm)
	if got, want := s.rm.stock("tea"), (Stock{Available: 1, Reserved: 2}); got != want {
		t.Errorf("tea %+v, want %+v", got, want)
	}
	s.noDeadLetters()
}

// TestDecisionEventApplied: a decision whose placement never reached the
// read model (dead-lettered, say) is applied when it arrives; one for an
// order the read model knows changes nothing, the first decision standing.
func TestDecisionEventApplied(t *testing.T) {
	s := newShop(t)
	if _, err := newInventory(t.Context(), s.store, s.rm.db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	h := handlers{store: s.store, logger: slog.New(slog.DiscardHandler)}
	apply := func(stream, typ, data string) {
		t.Helper()
		tx, err := s.rm.db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		ev := client.RecordedEvent{Topic: OrdersTopic, Stream: stream, Revision: 1, Type: typ, Data: []byte(data)}
		if err := h.order(t.Context(), tx, ev); err != nil {
			t.Fatalf("%s on %s: %v", typ, stream, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	apply("order-x", TypeOrderReserved, `{"order_id":"order-x","sku":"tea","qty":2}`)
	apply("order-y", TypeOrderRejected, `{"order_id":"order-y","sku":"tea","qty":1,"reason":"out of tea"}`)
	apply("order-x", TypeOrderRejected, `{"order_id":"order-x","sku":"tea","qty":2,"reason":"second thoughts"}`)
	if got, want := s.rm.orders(), map[string]string{"order-x": "reserved", "order-y": "rejected: out of tea"}; !maps.Equal(got, want) {
		t.Errorf("orders %v, want %v", got, want)
	}
	if got, want := s.rm.stock("tea"), (Stock{Available: -2, Reserved: 2}); got != want {
		t.Errorf("tea %+v, want %+v", got, want)
	}
}

// TestCommandErrors: bad command lines are refused before anything is
// written, and a second placement of an order id is refused by the
// store's expected revision, with no projection running.
func TestCommandErrors(t *testing.T) {
	s := newShop(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"place", "--order", "order 1", "--sku", "tea"}, `order id "order 1": only letters`},
		{[]string{"place", "--order", "order-1", "--sku", "tea", "--qty", "0"}, "quantity 0: want 1 to 1000000"},
		{[]string{"restock", "--sku", "tea", "--qty", "-1"}, "quantity -1"},
		{[]string{"restock", "--sku", "tea", "--order", "x"}, "flag provided but not defined: -order"},
		{[]string{"inventory", "--db", ""}, "--db (or SHOP_DB) is required"},
		{[]string{"status"}, `order id "": want 1 to 64 characters`},
		{[]string{"ship"}, `unknown command "ship"`},
	} {
		if _, err := s.cmd(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shop %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if out, err := s.cmd("place", "--order", "order-1", "--sku", "tea", "--qty", "2"); err != nil || !strings.HasPrefix(out, "placed order-1: 2 × tea (shop.orders/order-1 revision 0") {
		t.Fatalf("place: %q %v", out, err)
	}
	if _, err := s.cmd("place", "--order", "order-1", "--sku", "coffee", "--qty", "1"); !errors.Is(err, ErrAlreadyPlaced) {
		t.Fatalf("placing order-1 again: %v", err)
	}
	if got := s.streamTypes(OrdersTopic, "order-1"); len(got) != 1 {
		t.Fatalf("order-1's stream holds %v after a refused second placement", got)
	}
}

// containsFields reports whether a line of out starts with these
// whitespace-separated fields.
func containsFields(out string, fields ...string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}
