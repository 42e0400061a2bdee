package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

// The shop's topics. Each order is a stream of OrdersTopic named by its id;
// each SKU a stream of InventoryTopic named SKUStream(sku).
const (
	OrdersTopic    = "shop.orders"
	InventoryTopic = "shop.inventory"
)

// Event types. OrderReserved and OrderRejected are the inventory's
// decisions, recorded on the order's stream.
const (
	TypeOrderPlaced   = "OrderPlaced"
	TypeOrderReserved = "OrderReserved"
	TypeOrderRejected = "OrderRejected"
	TypeStockAdded    = "StockAdded"
	// TypeStockReserved is on the SKU's stream: the quantity a reserved
	// order took, written with the OrderReserved in one AppendMulti.
	TypeStockReserved = "StockReserved"
)

// Limits. They keep every sum of quantities far from overflowing.
const (
	// QtyMax bounds one order or one restock.
	QtyMax = 1_000_000
	// StockAddedMax bounds all restocks of one SKU together.
	StockAddedMax = 1_000_000_000
	// nameBytesMax bounds order ids and SKUs.
	nameBytesMax = 64
)

// OrderPlaced is the order service's fact: a customer ordered Qty of SKU.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int64  `json:"qty"`
}

// OrderDecided is the data of both decisions: OrderReserved, the stock is
// set aside, and OrderRejected, the apology for an order that was accepted
// but cannot be filled, with the reason.
type OrderDecided struct {
	OrderID string `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int64  `json:"qty"`
	Reason  string `json:"reason,omitempty"`
}

// StockAdded is a restock of a SKU.
type StockAdded struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// SKUStream is the stream of a SKU in InventoryTopic.
func SKUStream(sku string) string { return "sku-" + sku }

// validName checks an order id or SKU: 1 to 64 letters, digits, '-', '_'
// or '.', so that it reads well as a stream name and in a shell.
func validName(what, name string) error {
	if name == "" || len(name) > nameBytesMax {
		return fmt.Errorf("%s %q: want 1 to %d characters", what, name, nameBytesMax)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%s %q: only letters, digits, '-', '_' and '.'", what, name)
		}
	}
	return nil
}

func validQty(qty int64) error {
	if qty < 1 || qty > QtyMax {
		return fmt.Errorf("quantity %d: want 1 to %d", qty, QtyMax)
	}
	return nil
}

// Validate checks an order before it is placed.
func (o OrderPlaced) Validate() error {
	return errors.Join(validName("order id", o.OrderID), validName("SKU", o.SKU), validQty(o.Qty))
}

// Stock is the inventory read model's row of one SKU.
type Stock struct {
	Available int64
	Reserved  int64
}

// Reserve sets qty aside.
func (s Stock) Reserve(qty int64) Stock {
	return Stock{Available: s.Available - qty, Reserved: s.Reserved + qty}
}

// RestockedQty sums the quantities of the StockAdded events among events.
// One the stock projection cannot apply (bad data, a quantity out of
// range) ends in its dead-letter topic, so it counts for nothing here.
func RestockedQty(events []client.RecordedEvent) int64 {
	var sum int64
	for _, ev := range events {
		var a StockAdded
		if ev.Type != TypeStockAdded || json.Unmarshal(ev.Data, &a) != nil || validQty(a.Qty) != nil {
			continue
		}
		sum += a.Qty
	}
	return sum
}

// Decision is what the inventory does with an order.
type Decision struct {
	// Reserve is true when the order is filled from stock.
	Reserve bool
	// Reason says why the order is rejected, when Reserve is false.
	Reason string
}

// Decide reserves an order's quantity when its SKU has that much available,
// and rejects it otherwise. The order service validates what it appends,
// but any producer can write to the topic: an invalid order is rejected
// too, with the reason.
func Decide(stock Stock, order OrderPlaced) Decision {
	if err := validQty(order.Qty); err != nil {
		return Decision{Reason: err.Error()}
	}
	if stock.Available < order.Qty {
		return Decision{Reason: fmt.Sprintf("only %d of %s available, %d ordered", stock.Available, order.SKU, order.Qty)}
	}
	return Decision{Reserve: true}
}

// Event is the event that records the decision on order orderID.
func (d Decision) Event(orderID string, o OrderPlaced) (client.EventData, error) {
	typ := TypeOrderRejected
	if d.Reserve {
		typ = TypeOrderReserved
	}
	data, err := json.Marshal(OrderDecided{OrderID: orderID, SKU: o.SKU, Qty: o.Qty, Reason: d.Reason})
	if err != nil {
		return client.EventData{}, fmt.Errorf("%s of %s: %w", typ, orderID, err)
	}
	return client.EventData{Type: typ, Data: data}, nil
}

// DecisionOf reads a recorded decision back from its event.
func DecisionOf(ev client.RecordedEvent) (Decision, OrderDecided, error) {
	if ev.Type != TypeOrderReserved && ev.Type != TypeOrderRejected {
		return Decision{}, OrderDecided{}, fmt.Errorf("%s revision %d is %s, not a decision", ev.Stream, ev.Revision, ev.Type)
	}
	var data OrderDecided
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return Decision{}, OrderDecided{}, fmt.Errorf("%s revision %d: %s: %w", ev.Stream, ev.Revision, ev.Type, err)
	}
	return Decision{Reserve: ev.Type == TypeOrderReserved, Reason: data.Reason}, data, nil
}

// DecisionID is the event id of the decision on source, an OrderPlaced
// event. It is derived from the event alone, one per order placement, so
// whoever decides the same placement again (this projection replaying
// after a crash, another read model) appends an event the store already
// holds: the stream keeps one decision, the first.
func DecisionID(source client.RecordedEvent) string {
	name := fmt.Sprintf("decision on %s/%s@%d %s", source.Topic, source.Stream, source.Revision, source.ID)
	return uuid.NewSHA1(decisionNamespace, []byte(name)).String()
}

// decisionNamespace keeps the shop's derived ids apart from any other
// name-based UUIDs.
var decisionNamespace = uuid.MustParse("8f0b7c8e-3f57-4c5e-9a43-5d6f2e1b7a90")

// ReservationID is the id of the StockReserved that goes with the
// decision on placement source, derived from it as DecisionID is.
func ReservationID(source client.RecordedEvent) string {
	name := fmt.Sprintf("reservation for %s/%s@%d %s", source.Topic, source.Stream, source.Revision, source.ID)
	return uuid.NewSHA1(decisionNamespace, []byte(name)).String()
}

// ReservationEvent is the StockReserved of a reserved order, for the SKU's
// stream.
func ReservationEvent(source client.RecordedEvent, o OrderPlaced) (client.EventData, error) {
	data, err := json.Marshal(OrderDecided{OrderID: o.OrderID, SKU: o.SKU, Qty: o.Qty})
	if err != nil {
		return client.EventData{}, fmt.Errorf("%s of %s: %w", TypeStockReserved, o.OrderID, err)
	}
	return client.EventData{ID: ReservationID(source), Type: TypeStockReserved, Data: data}, nil
}

// OrderStatus is an order as its stream tells it.
type OrderStatus struct {
	// Placed is nil for an order never placed.
	Placed *OrderPlaced
	// Decision is the inventory's first decision, nil while there is none.
	Decision *Decision
}

func (s OrderStatus) String() string {
	switch {
	case s.Placed == nil:
		return "not placed"
	case s.Decision == nil:
		return fmt.Sprintf("placed: %d × %s, awaiting the inventory", s.Placed.Qty, s.Placed.SKU)
	case s.Decision.Reserve:
		return fmt.Sprintf("reserved: %d × %s", s.Placed.Qty, s.Placed.SKU)
	}
	return "rejected: " + s.Decision.Reason
}

// FoldOrder folds an order stream's events, oldest first, into its status.
// The first decision stands. Events of other types are left to other
// readers.
func FoldOrder(events []client.RecordedEvent) (OrderStatus, error) {
	var s OrderStatus
	for _, ev := range events {
		switch ev.Type {
		case TypeOrderPlaced:
			if s.Placed != nil {
				return s, fmt.Errorf("%s revision %d: placed a second time", ev.Stream, ev.Revision)
			}
			var p OrderPlaced
			if err := json.Unmarshal(ev.Data, &p); err != nil {
				return s, fmt.Errorf("%s revision %d: %s: %w", ev.Stream, ev.Revision, ev.Type, err)
			}
			s.Placed = &p
		case TypeOrderReserved, TypeOrderRejected:
			if s.Placed == nil {
				return s, fmt.Errorf("%s revision %d: %s before the order was placed", ev.Stream, ev.Revision, ev.Type)
			}
			d, _, err := DecisionOf(ev)
			if err != nil {
				return s, err
			}
			if s.Decision == nil {
				s.Decision = &d
			}
		}
	}
	return s, nil
}

// SKU is the aggregate behind restocks: the fold of a SKU's stream.
type SKU struct {
	Added    int64 `json:"added"`
	Restocks int   `json:"restocks"`
}

// Apply folds one of the SKU's events.
func (s *SKU) Apply(ev client.RecordedEvent) error {
	if ev.Type != TypeStockAdded {
		return nil
	}
	var a StockAdded
	if err := json.Unmarshal(ev.Data, &a); err != nil {
		return fmt.Errorf("%s: %w", ev.Type, err)
	}
	s.Added += a.Qty
	s.Restocks++
	return nil
}

// Restock decides a restock of qty on the SKU's current state.
func (s SKU) Restock(sku string, qty int64) (StockAdded, error) {
	if err := errors.Join(validName("SKU", sku), validQty(qty)); err != nil {
		return StockAdded{}, err
	}
	if s.Added+qty > StockAddedMax {
		return StockAdded{}, fmt.Errorf("restock %s by %d: %d added already, at most %d in all", sku, qty, s.Added, StockAddedMax)
	}
	return StockAdded{SKU: sku, Qty: qty}, nil
}
