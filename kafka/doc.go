// Package kafka serves the Kafka wire protocol over the cluster's topics.
//
// One file per API key (produce.go, fetch.go, …). Each file registers the
// versions it serves with register in an init function and opens with a
// comment on where it deviates from Apache Kafka; ApiVersions answers from
// those registrations, and docs/kafka-compat.md is checked against them by a
// test. Requests and responses are encoded with franz-go's kmsg.
//
// # Connections
//
// Each connection is a pipeline of three goroutines (conn.go), so that its
// reading, appending and answering overlap on different cores while its
// requests are still handled and answered in order:
//
//   - the reader reads a frame (bounded by Config.RequestBytesMax, grown only
//     as bytes arrive) and decodes it, at most one request ahead of the
//     handler;
//   - the handler runs each handler's synchronous part in arrival order: for
//     Produce that is validation and the append, so an idempotent producer's
//     pipelined batches land in the order sent. A handler may return a
//     deferred part (waiting for the group commit, long-polling a fetch);
//   - the writer resolves the deferred parts and writes the responses
//     strictly in request order, as Kafka requires. On a plain TCP
//     connection it sends a fetch's records from the segment files with
//     sendfile (zerocopy.go); over TLS they are read and copied.
//
// At most Config.InflightRequestsMax replies wait per connection; a full
// queue stops the handler, and then the reader, which is the back-pressure a
// client sees.
//
// # Listeners
//
// A Server serves one or more named listeners (Config.Listeners,
// listener.go; ServeListener for each), each with a security protocol as
// Kafka names them. An SSL or SASL_SSL listener runs TLS: the handshake
// happens on the connection's goroutine before its reader starts, bounded
// by 10 s, and a client certificate sets the connection's principal
// through the listener's mapping rules (tlsconf). Each connection keeps its
// listener: Metadata, DescribeCluster, FindCoordinator and Produce's
// leader hint give brokers at their addresses for that listener
// (cluster.Broker.ListenerAddr). A SASL_PLAINTEXT or SASL_SSL listener
// requires SASL authentication (below); PLAINTEXT and SSL ones never do.
//
// # Authentication
//
// On a SASL_* listener (sasl.go; Config.SASL.Mechanisms are the mechanisms
// offered), a connection first runs its SASL exchange on its own goroutine,
// after the TLS handshake if any, where only ApiVersions and the SASL
// requests are served, in frames of at most 512 KiB; once it authenticates,
// its principal (auth.User) is set and the pipeline starts. KIP-368 session
// expiry is checked by the handler before each request; re-authentication
// runs through the pipeline. Users are the cluster's (metadata group),
// managed with Describe/AlterUserScramCredentials (userscram.go).
//
// # Leaders
//
// The handlers read where partitions live through clusterView (view.go):
// leaders, in-sync replicas, brokers, the controller, topics and local
// partitions, which *cluster.Cluster provides and tests replace to show a
// partition led by another node or by none. Produce, Fetch, ListOffsets,
// OffsetForLeaderEpoch and DeleteRecords are served only where this node
// leads the partition (Server.leaderPartition: unknown partition, then the
// client's current leader epoch, KIP-320, then NOT_LEADER_OR_FOLLOWER);
// Metadata and DescribeCluster send clients to the leaders. A fetch
// session (fetchsession.go) ends when one of its partitions is found led
// elsewhere. On a single
// node this node leads every open partition, so nothing of this shows.
//
// # Transactions
//
// The transaction coordinator (package txn) answers InitProducerId with a
// transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and the
// describe and list requests; the Server is its txn.MarkerWriter
// (writetxnmarkers.go): markers to partitions led here are appended
// directly, others go to their leaders as WriteTxnMarkers (peers.go, over
// the node-to-node transport: cluster.NodeRequest, served by serveNode
// without an ACL check, whatever the Kafka listeners require). Produce
// checks a producer's first transactional batch on a partition with the
// coordinator, here or through
// AddPartitionsToTxn VerifyOnly on its node (KIP-890), in the handler's
// synchronous part, so the batches of one connection stay in order.
//
// # Authorization
//
// With Config.Authorizer set, each handler checks at its top what Kafka
// checks (authorize.go: the principal of the connection, its remote IP, the
// cluster's ACLs). Every registered API declares its decision there; a
// test fails for one that does not, and docs/kafka-compat.md lists them.
//
// # Quotas
//
// quota.go measures each reply against the cluster's client quotas
// (package quota, the config cluster.ClientQuotas applied): a client over
// one gets throttle_time_ms in the reply, sent at once, and its
// connection's read loop hands on no further request until the back-off
// has passed (conn.mutedUntil).
//
// # Errors
//
// errors.go holds the one table mapping internal errors to Kafka error codes.
// A malformed frame, an unknown API key or an unsupported version is logged
// and the connection is closed (ApiVersions excepted: it answers
// UNSUPPORTED_VERSION so clients can negotiate); other connections are not
// affected.
package kafka
