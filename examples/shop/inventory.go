package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/client"
)

// schema is the inventory read model.
const schema = `
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL, reserved BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, sku TEXT NOT NULL, qty BIGINT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '')`

// inventory is the projection's handler: it applies one event inside the
// transaction that also stores the projection's checkpoint.
type inventory struct {
	store *client.Client
}

func (inv inventory) handle(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent) error {
	switch ev.Type {
	case TypeStockAdded:
		var a StockAdded
		if err := json.Unmarshal(ev.Data, &a); err != nil {
			return fmt.Errorf("%s: %w", ev.Stream, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO stock (sku, available, reserved) VALUES ($1, $2, 0)
			ON CONFLICT (sku) DO UPDATE SET available = stock.available + EXCLUDED.available`, a.SKU, a.Qty)
		return err
	case TypeOrderPlaced:
		var o OrderPlaced
		if err := json.Unmarshal(ev.Data, &o); err != nil {
			return fmt.Errorf("%s: %w", ev.Stream, err)
		}
		return inv.place(ctx, tx, ev, o)
	}
	return nil // OrderRejected and anything else: nothing to project
}

// place reserves stock for an order, or rejects it and tells the order's
// stream. The rejection is appended before the transaction commits; if the
// commit then fails, the event is decided again and the same rejection (same
// id) is recognised by the store as already appended.
func (inv inventory) place(ctx context.Context, tx *sql.Tx, ev client.RecordedEvent, o OrderPlaced) error {
	var stock Stock
	err := tx.QueryRowContext(ctx, `SELECT available, reserved FROM stock WHERE sku = $1 FOR UPDATE`, o.SKU).Scan(&stock.Available, &stock.Reserved)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	d := Decide(stock, o)
	if d.Reserve {
		if _, err := tx.ExecContext(ctx, `UPDATE stock SET available = available - $2, reserved = reserved + $2 WHERE sku = $1`, o.SKU, o.Qty); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO orders (order_id, sku, qty, status) VALUES ($1, $2, $3, 'reserved')`, o.Order, o.SKU, o.Qty)
		return err
	}
	data, _ := json.Marshal(OrderRejected{Order: o.Order, Reason: d.Reason})
	_, err = inv.store.Append(ctx, Topic, ev.Stream, client.Exact(ev.Revision),
		client.EventData{ID: rejectionID(ev.ID), Type: TypeOrderRejected, Data: data})
	var wrong *client.WrongExpectedRevisionError
	if errors.As(err, &wrong) {
		// Something else was appended to the order after it was placed;
		// the rejection must not be written past it unseen.
		return fmt.Errorf("order %s changed while it was being decided: %w", o.Order, err)
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO orders (order_id, sku, qty, status, reason) VALUES ($1, $2, $3, 'rejected', $4)`, o.Order, o.SKU, o.Qty, d.Reason)
	return err
}
