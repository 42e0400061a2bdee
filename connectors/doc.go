// Package connectors runs change-data-capture connectors inside a node:
// their definitions live in the compacted topic __cairn_connectors (key =
// name, value = a JSON Definition, a tombstone on delete), so they survive
// restarts and follow the topic's replication; the node leading that
// topic's one partition runs them all (one goroutine set per connector),
// and on failover the new leader starts them, each resuming from the
// position its topics hold (cdc/postgres).
//
// The Manager reads the topic, reconciles the running connectors with it
// (started, stopped when paused or deleted, restarted after a failure
// with a backoff, left stopped after postgres.ErrSlotLost, which needs an
// operator), and answers the API: Create, Delete, Pause, Resume, List,
// Status, served over HTTP under /v1/connectors (http.go) and used by
// `cairn connector`; its figures are also on /metrics (metrics.go). Requests to a node that does not lead the topic fail
// with ErrNotLeader naming the leader.
//
// With an authorizer (Handler's argument, the server's --authorizer), the
// API checks the request context's principal: Alter on the cluster to
// change connectors, Describe on the cluster to read them.
//
// The DSN is stored as given, password included, in the topic: list and
// status mask it (RedactDSN). Restrict who can read __cairn_connectors.
package connectors
