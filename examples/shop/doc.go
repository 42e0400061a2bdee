// Command shop is a small event-sourced shop on Cairn's event store, and a
// showcase of the Go SDK (packages client, client/aggregate and
// client/projection).
//
// The order service (shop place) appends OrderPlaced to a new stream per
// order in topic shop.orders, expecting no stream, so an order id is used
// once. Restocks (shop restock) go through the SDK's aggregate repository:
// each SKU is a stream in shop.inventory, saved with the revision it was
// loaded at. The inventory projection (shop inventory) keeps a PostgreSQL
// read model of both topics, its checkpoints committed with each change,
// and decides each order against the stock it has seen: it reserves
// (OrderReserved on the order's stream and StockReserved on the SKU's, in
// one AppendMulti, so neither is ever recorded without the other), or
// appends OrderRejected to the order's stream, the compensating event that
// an order service which answers before the inventory owes its customers.
// shop status reads an order's stream; shop stock reads the read model.
//
// domain.go holds the decisions as pure functions; orders.go, restock.go and
// inventory.go the I/O around them. README.md walks through a session.
package main
