package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stock Stock
		qty   int64
		want  Decision
	}{
		{"exactly enough", Stock{Available: 3}, 3, Decision{Reserve: true}},
		{"more than enough", Stock{Available: 5, Reserved: 2}, 1, Decision{Reserve: true}},
		{"one short", Stock{Available: 1, Reserved: 3}, 2, Decision{Reason: "only 1 of tea available, 2 ordered"}},
		{"none at all", Stock{}, 1, Decision{Reason: "only 0 of tea available, 1 ordered"}},
		{"overdrawn by a recorded reservation", Stock{Available: -2, Reserved: 2}, 1, Decision{Reason: "only -2 of tea available, 1 ordered"}},
		{"zero ordered", Stock{Available: 5}, 0, Decision{Reason: "quantity 0: want 1 to 1000000"}},
		{"negative", Stock{Available: 5}, -2, Decision{Reason: "quantity -2: want 1 to 1000000"}},
		{"over the limit", Stock{Available: 2 * QtyMax}, QtyMax + 1, Decision{Reason: "quantity 1000001: want 1 to 1000000"}},
	} {
		if got := Decide(tc.stock, OrderPlaced{OrderID: "order-1", SKU: "tea", Qty: tc.qty}); got != tc.want {
			t.Errorf("%s: Decide(%+v, %d) = %+v, want %+v", tc.name, tc.stock, tc.qty, got, tc.want)
		}
	}
}

func TestReserve(t *testing.T) {
	if got, want := (Stock{Available: 5, Reserved: 1}).Reserve(2), (Stock{Available: 3, Reserved: 3}); got != want {
		t.Fatalf("reserve 2: %+v, want %+v", got, want)
	}
	// A recorded reservation applies whatever the stock: facts are not re-decided.
	if got, want := (Stock{}).Reserve(2), (Stock{Available: -2, Reserved: 2}); got != want {
		t.Fatalf("reserve 2 of nothing: %+v, want %+v", got, want)
	}
}

// TestDecisionEvent: a decision survives its trip through an event.
func TestDecisionEvent(t *testing.T) {
	o := OrderPlaced{OrderID: "order-1", SKU: "tea", Qty: 2}
	for _, d := range []Decision{{Reserve: true}, {Reason: "only 1 of tea available, 2 ordered"}} {
		e, err := d.Event("order-1", o)
		if err != nil {
			t.Fatal(err)
		}
		got, data, err := DecisionOf(client.RecordedEvent{Stream: "order-1", Type: e.Type, Data: e.Data})
		if err != nil || got != d || data != (OrderDecided{OrderID: "order-1", SKU: "tea", Qty: 2, Reason: d.Reason}) {
			t.Errorf("%+v as %s %s came back as %+v %+v (%v)", d, e.Type, e.Data, got, data, err)
		}
	}
	if _, _, err := DecisionOf(event(1, TypeOrderPlaced, `{}`)); err == nil || !strings.Contains(err.Error(), "not a decision") {
		t.Errorf("an OrderPlaced read as a decision: %v", err)
	}
	if _, _, err := DecisionOf(event(1, TypeOrderRejected, `{"reason":`)); err == nil {
		t.Error("a decision that is not JSON was read")
	}
}

func event(rev uint64, typ, data string) client.RecordedEvent {
	return client.RecordedEvent{Topic: OrdersTopic, Stream: "order-1", Revision: rev, Type: typ, Data: []byte(data)}
}

func TestFoldOrder(t *testing.T) {
	placed := event(0, TypeOrderPlaced, `{"order_id":"order-1","sku":"tea","qty":2}`)
	reserved := event(1, TypeOrderReserved, `{"order_id":"order-1","sku":"tea","qty":2}`)
	rejected := func(rev uint64, reason string) client.RecordedEvent {
		return event(rev, TypeOrderRejected, `{"order_id":"order-1","sku":"tea","qty":2,"reason":"`+reason+`"}`)
	}
	for _, tc := range []struct {
		name   string
		events []client.RecordedEvent
		want   string // the status, or the error
	}{
		{"no events", nil, "not placed"},
		{"placed", []client.RecordedEvent{placed}, "placed: 2 × tea, awaiting the inventory"},
		{"reserved", []client.RecordedEvent{placed, reserved}, "reserved: 2 × tea"},
		{"rejected", []client.RecordedEvent{placed, rejected(1, "out of tea")}, "rejected: out of tea"},
		{"the first decision stands", []client.RecordedEvent{placed, rejected(1, "first"), reserved}, "rejected: first"},
		{"other types are left alone", []client.RecordedEvent{placed, event(1, "OrderGiftWrapped", `{}`)}, "placed: 2 × tea, awaiting the inventory"},
		{"decided before placed", []client.RecordedEvent{rejected(0, "x")}, "error: order-1 revision 0: OrderRejected before the order was placed"},
		{"placed twice", []client.RecordedEvent{placed, placed}, "error: order-1 revision 0: placed a second time"},
		{"data that is not JSON", []client.RecordedEvent{event(0, TypeOrderPlaced, `tea`)}, "error: order-1 revision 0: OrderPlaced: invalid character"},
	} {
		s, err := FoldOrder(tc.events)
		got := s.String()
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDecisionID(t *testing.T) {
	ev := client.RecordedEvent{Topic: OrdersTopic, Stream: "order-4", Revision: 0, ID: "5b0c6f3e-0f4e-4d43-9d0b-2f3c2b1a0e11"}
	id := DecisionID(ev)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("DecisionID %q: %v", id, err)
	}
	replayed := ev
	replayed.Position = client.Position{Partition: 0, Offset: 42} // positions play no part
	if again := DecisionID(replayed); again != id {
		t.Fatalf("the same event gave ids %s and %s", id, again)
	}
	other := []client.RecordedEvent{ev, ev, ev, ev}
	other[0].Topic = "elsewhere"
	other[1].Stream = "order-5"
	other[2].Revision = 1
	other[3].ID = "another"
	for i, o := range other {
		if DecisionID(o) == id {
			t.Errorf("variant %d of the event gives the same id", i)
		}
	}
	if ev.ID == id {
		t.Errorf("the decision takes the order event's own id")
	}
}

func TestOrderValidate(t *testing.T) {
	for _, tc := range []struct {
		order OrderPlaced
		want  string // "" when valid, else part of the error
	}{
		{OrderPlaced{OrderID: "order-1", SKU: "tea", Qty: 2}, ""},
		{OrderPlaced{OrderID: "A_b.9", SKU: "green-tea", Qty: QtyMax}, ""},
		{OrderPlaced{SKU: "tea", Qty: 1}, `order id "": want 1 to 64 characters`},
		{OrderPlaced{OrderID: strings.Repeat("x", 65), SKU: "tea", Qty: 1}, "want 1 to 64 characters"},
		{OrderPlaced{OrderID: "order 1", SKU: "tea", Qty: 1}, `order id "order 1": only letters`},
		{OrderPlaced{OrderID: "order-1", SKU: "tea/green", Qty: 1}, `SKU "tea/green": only letters`},
		{OrderPlaced{OrderID: "order-1", SKU: "tea", Qty: 0}, "quantity 0"},
	} {
		err := tc.order.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.order, err, tc.want)
		}
	}
}

func TestSKU(t *testing.T) {
	var s SKU
	for i, ev := range []client.RecordedEvent{
		{Type: TypeStockAdded, Data: []byte(`{"sku":"tea","qty":3}`)},
		{Type: "PriceChanged", Data: []byte(`{"price":4}`)},
		{Type: TypeStockAdded, Data: []byte(`{"sku":"tea","qty":10}`)},
	} {
		if err := s.Apply(ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if s != (SKU{Added: 13, Restocks: 2}) {
		t.Fatalf("folded %+v", s)
	}
	if err := s.Apply(client.RecordedEvent{Type: TypeStockAdded, Data: []byte(`{`)}); err == nil {
		t.Fatal("a StockAdded that is not JSON was folded")
	}

	if got, err := s.Restock("tea", 5); err != nil || got != (StockAdded{SKU: "tea", Qty: 5}) {
		t.Fatalf("restock 5: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		state SKU
		sku   string
		qty   int64
		want  string
	}{
		{SKU{}, "tea", 0, "quantity 0"},
		{SKU{}, "", 1, `SKU ""`},
		{SKU{Added: StockAddedMax - 1}, "tea", 2, "at most 1000000000 in all"},
	} {
		if _, err := tc.state.Restock(tc.sku, tc.qty); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restock %q by %d on %+v: %v, want %q", tc.sku, tc.qty, tc.state, err, tc.want)
		}
	}
	if _, err := (SKU{Added: StockAddedMax - 1}).Restock("tea", 1); err != nil {
		t.Errorf("restocking up to the limit: %v", err)
	}
}

func TestRestockedQty(t *testing.T) {
	events := []client.RecordedEvent{
		{Type: TypeStockAdded, Data: []byte(`{"sku":"tea","qty":3}`)},
		{Type: "StockCounted", Data: []byte(`{"sku":"tea","qty":100}`)},
		{Type: TypeStockAdded, Data: []byte(`{"sku":"tea","qty":0}`)},
		{Type: TypeStockAdded, Data: []byte(`not json`)},
		{Type: TypeStockAdded, Data: []byte(`{"sku":"tea","qty":4}`)},
	}
	if got := RestockedQty(events); got != 7 {
		t.Errorf("RestockedQty = %d, want 7 (only the valid StockAdded events)", got)
	}
	if got := RestockedQty(nil); got != 0 {
		t.Errorf("RestockedQty(nil) = %d", got)
	}
}
