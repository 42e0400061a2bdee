// Command cdc-orders is a small order service that publishes its events
// through a transactional outbox and Cairn's PostgreSQL connector.
//
// Each command is one database transaction that changes the orders table
// and inserts the matching event into the outbox table: the state and its
// event are committed together or not at all, and the service never talks
// to Cairn. The connector (cairn connector create postgres ...
// --outbox-table public.outbox) turns each outbox row into an event of
// stream order/<id> in an event-store topic, and the orders table's changes
// into Debezium change events. README.md walks through a session.
package main
