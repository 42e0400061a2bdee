// Package server wires Cairn's components into one process: it opens the
// cluster on the data directory, serves the Kafka protocol and the HTTP admin
// endpoints (/metrics, /healthz), and shuts everything down in order.
//
// Start binds both ports before it opens the data directory (which takes the
// directory's lock), so a start refused for a taken port leaves no file
// behind. /healthz answers 503 and cairn_partitions_offline counts every
// partition that is offline: failed to open, failed a sync, or found damaged
// by a read; a cluster node's partitions with no replica on it are not
// offline, and count in neither. On a cluster node /healthz first asks
// cluster.Health: 200 "ok" only when the node's replica is in the metadata
// group's configuration, the group has a leader the node knows, and the node
// applied the metadata log up to the commit index it knows from that
// leader, and its metadata replica has not stopped (a damaged log, a
// failed write or sync); otherwise 503 "not serving: <reason>". /metrics adds the node's
// replication (cluster.NodeStats: cairn_cluster_leaders,
// cairn_cluster_partitions_under_replicated, cairn_cluster_replicas_not_caught_up,
// cairn_cluster_raft_groups_quiesced, cairn_cluster_meta_leader,
// cairn_cluster_elections_started_total and _won_total, the transport's
// cairn_transport_* counters) and the cairn_cluster_commit_seconds histogram.
//
// With Config.Peers set the node is one of a cluster (cluster's cluster
// mode): Start binds the Kafka and HTTP listeners first, then opens the
// cluster, which listens on the Raft address, waits for a quorum of its
// peers and registers the advertised Kafka and HTTP addresses
// (AdvertisedKafkaAddr, AdvertisedHTTPAddr; by default the bound ones) and
// the rack. With Config.Join instead (a member's Raft address) it joins a
// running cluster as a learner and listens at RaftAddr. PeerDialAddrs
// (--peer-dial-addr) names where it dials some peers instead of their
// Peers or registered addresses. Without Peers or Join
// a Raft address is refused: a single node listens for no other node.
//
// Close on a cluster node first hands the leadership of every group it
// leads to other nodes (cluster.HandOff), bounded by ShutdownTimeout (5 s
// by default, --shutdown-timeout), while Kafka and HTTP still answer, then
// drains: keeps answering until the Kafka listener is quiet for 200 ms (at
// most 2 s), so clients are told the new leader (KIP-951 on Produce)
// rather than meeting a closed connection; it logs what moved and how long
// it took; then it stops the listeners and closes the cluster as a single
// node does.
//
// Kafka listeners: Config.Listeners (NAME=PROTOCOL://HOST:PORT, several at
// once), or KafkaAddr for one PLAINTEXT listener (SASL_PLAINTEXT with
// SASLMechanisms); a cluster node registers
// each listener's advertised address by name. Config.TLS (tlsconf.Files) is
// the certificate of SSL listeners, of the HTTP listener with HTTPTLS and
// of the connections between nodes with RaftTLS (mutual TLS, the client CA
// checking the other nodes); the files are reloaded when they change. A
// client certificate's principal (PrincipalMappingRules) is the Kafka
// connection's, and each HTTP request's context's (auth.FromContext); with
// HTTPAuth, so is the user of an Authorization header, Basic or Bearer,
// checked by the Kafka server's SASL (httpauth.go).
// docs/security.md describes it for operators.
//
// The node's clock, randomness, filesystem and logger are Config.Env
// (env.Real() where unset); the cluster, its partitions and the group
// coordinator all run in it.
package server
