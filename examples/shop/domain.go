package main

import (
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

// Topic holds the shop's streams: order-<id> and sku-<sku>. One partition
// gives restocks and orders one order, so the projection decides every
// order against exactly the stock added before it.
const Topic = "shop"

// Event types.
const (
	TypeOrderPlaced   = "OrderPlaced"
	TypeOrderRejected = "OrderRejected"
	TypeStockAdded    = "StockAdded"
)

// OrderPlaced is the order service's fact: a customer asked for qty of sku.
type OrderPlaced struct {
	Order string `json:"order"`
	SKU   string `json:"sku"`
	Qty   int64  `json:"qty"`
}

// OrderRejected is the apology: the order was accepted but cannot be filled.
type OrderRejected struct {
	Order  string `json:"order"`
	Reason string `json:"reason"`
}

// StockAdded is a restock of a SKU.
type StockAdded struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

func orderStream(order string) string { return "order-" + order }
func skuStream(sku string) string     { return "sku-" + sku }

// Stock is what the inventory read model holds for one SKU.
type Stock struct {
	Available int64
	Reserved  int64
}

// Decision is what the inventory does with an order.
type Decision struct {
	Reserve bool
	Reason  string // why not, when Reserve is false
}

// Decide reserves the order's quantity when the SKU has enough available
// stock and rejects it otherwise.
func Decide(stock Stock, order OrderPlaced) Decision {
	switch {
	case order.Qty <= 0:
		return Decision{Reason: fmt.Sprintf("quantity %d is not positive", order.Qty)}
	case stock.Available < order.Qty:
		return Decision{Reason: fmt.Sprintf("only %d of %s available, %d ordered", stock.Available, order.SKU, order.Qty)}
	}
	return Decision{Reserve: true}
}

// Status is an order as its stream tells it.
type Status struct {
	Placed   *OrderPlaced
	Rejected *OrderRejected
}

func (s Status) String() string {
	switch {
	case s.Placed == nil:
		return "unknown"
	case s.Rejected != nil:
		return "rejected: " + s.Rejected.Reason
	}
	return fmt.Sprintf("placed: %d × %s (reserved once the inventory has seen it)", s.Placed.Qty, s.Placed.SKU)
}

// FoldOrder folds an order stream's events into its status.
func FoldOrder(events []client.RecordedEvent) (Status, error) {
	var s Status
	for _, ev := range events {
		switch ev.Type {
		case TypeOrderPlaced:
			var p OrderPlaced
			if err := json.Unmarshal(ev.Data, &p); err != nil {
				return s, fmt.Errorf("%s revision %d: %w", ev.Stream, ev.Revision, err)
			}
			s.Placed = &p
		case TypeOrderRejected:
			var r OrderRejected
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				return s, fmt.Errorf("%s revision %d: %w", ev.Stream, ev.Revision, err)
			}
			s.Rejected = &r
		}
	}
	return s, nil
}

// Inventory is the SKU aggregate: restocks are checked against it.
type Inventory struct {
	Added int64 `json:"added"`
}

// Apply folds one of the SKU's events.
func (i *Inventory) Apply(ev client.RecordedEvent) error {
	if ev.Type != TypeStockAdded {
		return nil
	}
	var a StockAdded
	if err := json.Unmarshal(ev.Data, &a); err != nil {
		return err
	}
	i.Added += a.Qty
	return nil
}

// rejectionID derives the rejection's event id from the order event's id,
// so a projection that decides the same order again after a crash appends
// the same event, which the store recognises as a retry.
func rejectionID(orderEventID string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("shop/rejection/"+orderEventID)).String()
}
