// Package client is the Go SDK for Cairn's event-store API
// (cairn.eventstore.v1): append with expected revisions (to one stream, or
// atomically to several with AppendMulti), read streams and topics,
// subscribe, and manage stream metadata, with Go types and errors.
//
// It depends only on the standard library, the generated API packages,
// connect, protobuf and uuid, so importing it does not pull the server into
// a service's build (client/deps_test.go keeps it so).
//
// Calls are retried while the server is unavailable, and a subscription
// the server ends as unavailable (shutting down, or on a cluster a leader
// change) is resumed from right after what it delivered (Subscription.Recv).
// A call whose connection dies mid-reply (the server killed) counts as
// unavailable too, as in gRPC: its outcome is unknown, and every call is
// safe to try again (appends carry their event ids).
//
// Subpackages build on it: aggregate loads and saves event-sourced
// aggregates with snapshots, and projection keeps SQL read models in step
// with a topic, storing its checkpoints in the same transactions.
//
// A stream's revisions count its events from 0. Where a revision may be
// missing (a stream with no events), it is an int64 and -1 means none.
package client
