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
// On a cluster, a stream's partition is served by its leader, whose stream
// index checks expected revisions. A node that does not lead it
// (cluster.Leader(...).Local false) forwards the call to the leader's HTTP
// address with the same API (forward.go), carrying the caller's deadline,
// its Authorization header (WithCallerAuthorization) and a header marking
// it forwarded, and returns the leader's answer unchanged. A forwarded call is never forwarded again: a node that does
// not lead the partition answers it UNAVAILABLE, naming the leader it knows.
// Subscriptions are relayed from the leader and end with UNAVAILABLE when
// the leader changes, and so do subscriptions served here when this node
// stops leading. A topic read or subscription serves the partitions led
// here itself and the others through their leaders (spread.go). A read
// served here (ReadStream, GetStreamMetadata, ReadTopic, a subscription's
// catch-up) first confirms the leadership with a quorum
// (partition.Linearize, linearize.go), so a deposed leader that does not
// know it yet answers UNAVAILABLE rather than stale state. Where
// partitions are led is asked of a small interface (placement.go), the
// cluster's by default; on a single node every partition is led here and
// nothing is forwarded.
//
// A refusal for a wrong expected revision is checked against the leader's
// stream index, which may be stale or hold uncommitted appends: it is
// answered only once the leadership it was checked under is confirmed by a
// quorum and what the index held is committed (confirmRefusal), else
// UNAVAILABLE; AppendMulti's failed parts are checked the same way after
// the abort.
//
// AppendMulti (appendmulti.go) is a transaction this node runs with its
// transaction coordinator (Config.Txn) under one of a pool of
// transactional ids: one transactional batch per part, checked by its
// partition, then COMMIT, or ABORT naming each part whose expectation
// failed. Reads of a stream an open transaction holds wait for its marker
// (durableState), and topic reads stop at the last stable offset, so no
// reader sees part of one. On a cluster the node first takes the
// leadership of each part's partition and of its coordinator
// (multilead.go); a leadership moving away mid-call aborts the call.
//
// With Config.Authorizer set, each call checks the caller's rights on its
// topic against the cluster's ACLs (authorize.go) and refuses with
// PermissionDenied.
//
// The service runs in the cluster's environment (cluster.Cluster.Env): event
// times and read deadlines come from its clock, and the ids of events sent
// without one (version-4 UUIDs) from its randomness.
package eventstore
