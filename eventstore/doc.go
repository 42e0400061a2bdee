// Package eventstore serves the event-store API (cairn.eventstore.v1, over
// connect: gRPC, gRPC-Web and JSON on the HTTP address) on topics with
// cleanup.policy=stream.
//
// It holds no state of its own. An append is an ordinary produce of records
// whose key is the stream and whose headers carry the CloudEvents attributes
// and the expected revision; the partition checks that revision under its
// single writer, against its stream index (package streams). Reads look a
// stream up in that index and fetch only its records, and never act on a
// stream's metadata or deletion before it is durable (durableState);
// subscriptions catch up from the log and then wait for the high watermark
// to move.
//
// The service runs in the cluster's environment (cluster.Cluster.Env): event
// times and read deadlines come from its clock, and the ids of events sent
// without one (version-4 UUIDs) from its randomness.
package eventstore
