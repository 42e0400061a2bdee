package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/projection"
)

// schema is the inventory read model. The projection package adds its
// checkpoint table, cairn_projection_checkpoints, beside it.
const schema = `
CREATE TABLE IF NOT EXISTS stock (
	sku       TEXT PRIMARY KEY,
	available BIGINT NOT NULL,
	reserved  BIGINT NOT NULL,
	-- the last revision of the SKU's stream applied here
	revision  BIGINT NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS orders (
	order_id TEXT PRIMARY KEY,
	sku      TEXT NOT NULL,
	qty      BIGINT NOT NULL,
	status   TEXT NOT NULL,
	reason   TEXT NOT NULL DEFAULT ''
)`

// Order statuses in the read model.
const (
	statusReserved = "reserved"
	statusRejected = "rejected"
)

// inventory is the projection of both topics into the read model. Each
// topic has its own runner and checkpoints (a checkpoint is a position in
// one topic), so an order is decided against the restocks the stock
// runner has applied by then: eventually consistent, like the shop. Which
// restocks those are depends on timing, so a decision is made once and
// recorded on the order's stream; every later projection of the order
// (after a crash, in a read model built afresh) applies the recorded one.
type inventory struct {
	orders, stock *projection.Runner
	logger        *slog.Logger
}

// Projection names, the keys of their checkpoints.
const (
	ordersProjection = "inventory-orders"
	stockProjection  = "inventory-stock"
)

// newInventory creates the read model's tables if needed and the two
// runners. store both feeds the runners and records the decisions.
func newInventory(ctx context.Context, store *client.Client, db *sql.DB, logger *slog.Logger) (*inventory, error) {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("create the inventory read model: %w", err)
	}
	h := handlers{store: store, logger: logger}
	inv := &inventory{logger: logger}
	var err error
	// The filters are the server's: records of other types only move the
	// checkpoints, they never reach the handlers.
	inv.orders, err = projection.New(store, db, ordersProjection, OrdersTopic, h.order,
		projection.WithFilter(client.Filter{EventTypePrefix: "Order"}), projection.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	inv.stock, err = projection.New(store, db, stockProjection, InventoryTopic, h.stock,
		projection.WithFilter(client.Filter{EventTypePrefix: "Stock"}), projection.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// Run projects both topics until ctx ends (nil) or a runner fails for
// good, which stops the other.
func (inv *inventory) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	for _, r := range []*projection.Runner{inv.orders, inv.stock} {
		go func() { done <- r.Run(ctx) }()
	}
	inv.logger.Info("inventory projection running", "topics", []string{OrdersTopic, InventoryTopic})
	var errs []error
	for range 2 {
		if err := <-done; err != nil {
			errs = append(errs, err)
			cancel()
		}
	}
	return errors.Join(errs...)
}

// handlers apply events to the read model, each inside the transaction
// that moves its runner's checkpoint past the event.
type handlers struct {
	store  *client.Client
	logger *slog.Logger
}

func (h handlers) stock(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
	if ev.Type != TypeStockAdded {
		return nil
	}
	var a StockAdded
	if err := json.Unmarshal(ev.Data, &a); err != nil {
		return fmt.Errorf("%s/%s revision %d: %s: %w", ev.Topic, ev.Stream, ev.Revision, ev.Type, err)
	}
	if err := validQty(a.Qty); err != nil {
		return fmt.Errorf("%s/%s revision %d: %w", ev.Topic, ev.Stream, ev.Revision, err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO stock (sku, available, reserved, revision) VALUES ($1, $2, 0, $3)
		ON CONFLICT (sku) DO UPDATE SET available = stock.available + EXCLUDED.available,
			revision = GREATEST(stock.revision, EXCLUDED.revision)`, a.SKU, a.Qty, int64(ev.Revision))
	if err != nil {
		return fmt.Errorf("restock %s: %w", a.SKU, err)
	}
	h.logger.Info("restocked", "sku", a.SKU, "qty", a.Qty)
	return nil
}

func (h handlers) order(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
	switch ev.Type {
	case TypeOrderPlaced:
		var o OrderPlaced
		if err := json.Unmarshal(ev.Data, &o); err != nil {
			return fmt.Errorf("%s/%s revision %d: %s: %w", ev.Topic, ev.Stream, ev.Revision, ev.Type, err)
		}
		return h.decide(ctx, tx, ev, o)
	case TypeOrderReserved, TypeOrderRejected:
		return h.decided(ctx, tx, ev)
	}
	return nil
}

// decideAttempts bounds how often an order is decided again because its
// SKU's stream moved (a restock, or another read model's reservation)
// between the decision and its recording.
const decideAttempts = 5

// decide decides an order against the stock the read model holds, records
// the decision on the order's stream and applies it to the read model.
//
// A reservation is recorded in one AppendMulti with a StockReserved on the
// SKU's stream, expecting the SKU's revision the decision was made on, so
// the store never holds one without the other, and a restock landing in
// between makes the order be decided again on the new stock. The decision
// is appended expecting the order's revision decided on and with ids
// derived from the OrderPlaced event. When the store already holds a
// decision there — this projection's own, appended before a crash lost
// the commit, or another read model's — the append is answered as a
// duplicate (or refused), and that recorded decision is applied instead
// of the new one: each order is decided once, however often and wherever
// its placement is projected.
func (h handlers) decide(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent, o OrderPlaced) error {
	// The row lock orders this decision with concurrent restocks of the SKU.
	var stock Stock
	projected := int64(-1)
	err := tx.QueryRowContext(ctx, `SELECT available, reserved, revision FROM stock WHERE sku = $1 FOR UPDATE`, o.SKU).Scan(&stock.Available, &stock.Reserved, &projected)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("order %s: stock of %s: %w", ev.Stream, o.SKU, err)
	}
	for attempt := 1; ; attempt++ {
		d, earlier, moved, err := h.decideOnce(ctx, ev, o, stock, projected)
		if err != nil {
			return err
		}
		if moved && attempt < decideAttempts {
			continue
		}
		if moved {
			return fmt.Errorf("order %s: the stock of %s kept moving; %d decisions not recorded", ev.Stream, o.SKU, attempt)
		}
		if err := applyDecision(ctx, tx, ev.Stream, o, d); err != nil {
			return err
		}
		outcome := statusRejected
		if d.Reserve {
			outcome = statusReserved
		}
		h.logger.Info(outcome, "order", ev.Stream, "sku", o.SKU, "qty", o.Qty, "reason", d.Reason, "decided_earlier", earlier)
		return nil
	}
}

// decideOnce decides the order and records the decision. It returns the
// decision that stands (a recorded earlier one when earlier), or moved
// when the SKU's stream moved since it was read and no decision was
// recorded: the caller decides again.
func (h handlers) decideOnce(ctx context.Context, ev client.RecordedEvent, o OrderPlaced, stock Stock, projected int64) (d Decision, earlier, moved bool, err error) {
	// The stock runner may lag behind this one (or not have started): the
	// restocks the store holds but the read model has not applied yet
	// count too, or an order placed after a restock could be refused for
	// want of it.
	pending, skuRevision, err := h.unprojectedStock(ctx, o.SKU, projected)
	if err != nil {
		return d, false, false, fmt.Errorf("order %s: %w", ev.Stream, err)
	}
	d = Decide(Stock{Available: stock.Available + pending, Reserved: stock.Reserved}, o)
	record, err := d.Event(ev.Stream, o)
	if err != nil {
		return d, false, false, err
	}
	record.ID = DecisionID(ev)
	decision := client.AppendPart{Topic: OrdersTopic, Stream: ev.Stream, Expected: client.Exact(ev.Revision), Events: []client.EventData{record}}
	var duplicate bool
	if d.Reserve {
		reserved, err := ReservationEvent(ev, o)
		if err != nil {
			return d, false, false, err
		}
		var res []client.AppendResult
		res, err = h.store.AppendMulti(ctx, decision,
			client.AppendPart{Topic: InventoryTopic, Stream: SKUStream(o.SKU), Expected: client.ExpectedAfter(skuRevision), Events: []client.EventData{reserved}})
		var multi *client.AppendMultiError
		switch {
		case errors.As(err, &multi) && multi.Mismatches[0].Part == 1:
			// Only the SKU moved; unless a decision is recorded after
			// all (a retry whose stock moved since), decide again.
			recorded, found, rerr := h.decisionIfAny(ctx, ev)
			if rerr != nil || found {
				return recorded, true, false, rerr
			}
			return d, false, true, nil
		case err != nil && !errors.Is(err, client.ErrWrongExpectedRevision):
			return d, false, false, fmt.Errorf("record the decision on %s: %w", ev.Stream, err)
		case err == nil:
			duplicate = res[0].Duplicate
		}
		earlier = err != nil
	} else {
		res, err := h.store.Append(ctx, OrdersTopic, ev.Stream, client.Exact(ev.Revision), record)
		if err != nil && !errors.Is(err, client.ErrWrongExpectedRevision) {
			return d, false, false, fmt.Errorf("record the decision on %s: %w", ev.Stream, err)
		}
		earlier, duplicate = err != nil, err == nil && res.Duplicate
	}
	if earlier || duplicate {
		d, err = h.recordedDecision(ctx, ev)
		return d, true, false, err
	}
	return d, false, false, nil
}

// unprojectedStock sums the restocks of sku after revision projected
// that the store holds, and returns the SKU stream's last revision read
// (projected when nothing follows it).
func (h handlers) unprojectedStock(ctx context.Context, sku string, projected int64) (int64, int64, error) {
	var events []client.RecordedEvent
	for page, err := range h.store.ReadStreamPages(ctx, InventoryTopic, SKUStream(sku), client.FromRevision(uint64(projected+1))) {
		if errors.Is(err, client.ErrStreamNotFound) {
			return 0, -1, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read the restocks of %s: %w", sku, err)
		}
		events = append(events, page.Events...)
	}
	last := projected
	if len(events) > 0 {
		last = int64(events[len(events)-1].Revision)
	}
	return RestockedQty(events), last, nil
}

// decisionIfAny reads the decision that follows placement ev in its
// stream, found false when there is none yet.
func (h handlers) decisionIfAny(ctx context.Context, ev client.RecordedEvent) (Decision, bool, error) {
	page, err := h.store.ReadStream(ctx, OrdersTopic, ev.Stream, client.FromRevision(ev.Revision+1), client.MaxCount(1))
	if err != nil {
		return Decision{}, false, fmt.Errorf("read the decision on %s: %w", ev.Stream, err)
	}
	if len(page.Events) == 0 {
		return Decision{}, false, nil
	}
	d, _, err := DecisionOf(page.Events[0])
	return d, true, err
}

// recordedDecision reads the decision that follows placement ev in its stream.
func (h handlers) recordedDecision(ctx context.Context, ev client.RecordedEvent) (Decision, error) {
	page, err := h.store.ReadStream(ctx, OrdersTopic, ev.Stream, client.FromRevision(ev.Revision+1), client.MaxCount(1))
	if err != nil {
		return Decision{}, fmt.Errorf("read the decision on %s: %w", ev.Stream, err)
	}
	if len(page.Events) == 0 {
		return Decision{}, fmt.Errorf("order %s: the store refused the decision, but has no event after revision %d", ev.Stream, ev.Revision)
	}
	// Anything else there (another writer's event) fails the placement:
	// the order is no longer what was decided on.
	d, _, err := DecisionOf(page.Events[0])
	return d, err
}

// decided handles a decision event arriving through the subscription. It
// was applied when its order was decided, unless that placement never
// reached this read model (it was dead-lettered); a later decision on the
// same order changes nothing, as in FoldOrder.
func (h handlers) decided(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
	d, data, err := DecisionOf(ev)
	if err != nil {
		return err
	}
	var known bool
	if err := tx.QueryRowContext(ctx, `SELECT true FROM orders WHERE order_id = $1`, ev.Stream).Scan(&known); err == nil {
		return nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("order %s: %w", ev.Stream, err)
	}
	return applyDecision(ctx, tx, ev.Stream, OrderPlaced{OrderID: data.OrderID, SKU: data.SKU, Qty: data.Qty}, d)
}

// applyDecision records an order's outcome and, for a reservation, moves
// its quantity from available to reserved. The update is relative, so a
// restock committing meanwhile is not lost; a recorded reservation applied
// before the restocks it was decided on (a new read model catching up
// orders first) makes available negative until they arrive.
func applyDecision(ctx context.Context, tx *sql.Tx, orderID string, o OrderPlaced, d Decision) error {
	status := statusRejected
	if d.Reserve {
		status = statusReserved
		_, err := tx.ExecContext(ctx, `INSERT INTO stock (sku, available, reserved) VALUES ($1, -$2::BIGINT, $2)
			ON CONFLICT (sku) DO UPDATE SET available = stock.available - EXCLUDED.reserved, reserved = stock.reserved + EXCLUDED.reserved`, o.SKU, o.Qty)
		if err != nil {
			return fmt.Errorf("order %s: reserve %d of %s: %w", orderID, o.Qty, o.SKU, err)
		}
	}
	// An order placed twice fails here on the primary key: only a producer
	// bypassing the order service can do that, and the event goes to the
	// dead-letter topic.
	_, err := tx.ExecContext(ctx, `INSERT INTO orders (order_id, sku, qty, status, reason) VALUES ($1, $2, $3, $4, $5)`,
		orderID, o.SKU, o.Qty, status, d.Reason)
	if err != nil {
		return fmt.Errorf("order %s: record %s: %w", orderID, status, err)
	}
	return nil
}

// printReadModel prints the stock and orders tables.
func printReadModel(ctx context.Context, db *sql.DB, out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SKU\tAVAILABLE\tRESERVED")
	rows, err := db.QueryContext(ctx, `SELECT sku, available, reserved FROM stock ORDER BY sku`)
	if err != nil {
		return fmt.Errorf("read stock: %w", err)
	}
	for rows.Next() {
		var sku string
		var s Stock
		if err := rows.Scan(&sku, &s.Available, &s.Reserved); err != nil {
			rows.Close()
			return fmt.Errorf("read stock: %w", err)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\n", sku, s.Available, s.Reserved)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("read stock: %w", err)
	}
	fmt.Fprintln(w) // a line without cells: the next table aligns on its own
	fmt.Fprintln(w, "ORDER\tSKU\tQTY\tSTATUS\tREASON")
	rows, err = db.QueryContext(ctx, `SELECT order_id, sku, qty, status, reason FROM orders ORDER BY order_id`)
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, sku, status, reason string
		var qty int64
		if err := rows.Scan(&id, &sku, &qty, &status, &reason); err != nil {
			return fmt.Errorf("read orders: %w", err)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", id, sku, qty, status, reason)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	return w.Flush()
}
