// Package integration tests the built cairn binary from the outside, the way
// users meet it: real Kafka clients (kcat, franz-go, sarama, kafkajs), the
// cairn command-line client, raw malformed frames, the HTTP endpoints, and
// SIGKILL in the middle of acknowledged writes.
//
// TestMain builds cmd/cairn once; every test starts its own `cairn serve` on
// free 127.0.0.1 ports with its own data directory, so tests share nothing
// but the binary. The cluster tests (cluster_test.go) start three of them
// as one cluster (--node-id, --peers on loopback), kill or stop a
// partition leader under a producer, and read each node's data directory
// after a clean stop; cluster_groups_test.go kills a consumer group's
// coordinator under the group and a producer, cluster_eventstore_test.go
// the leader of an event-store partition under appends through every
// node; txn_test.go SIGKILLs the transaction coordinator of a
// GroupTransactSession (single node and cluster) and reads transactions
// with kcat read_committed and sarama. TestClusterNemesis (nemesis_test.go) puts a fault proxy in front
// of each node's Raft listener and runs a seeded schedule of kills,
// pauses, blackholes, delays, resets and drops on a minority of the nodes
// under all three workloads, then heals and checks every acknowledgement,
// and that the recorded histories of a memberless group's offset commits
// and fetches and of one stream's appends and reads, each client through
// its own node, are linearizable (porcupine models in
// nemesis_linear_test.go);
// -nemesis.seed replays a schedule, -nemesis.duration and -nemesis.nodes
// (5) make longer and larger runs. The package has no non-test code
// besides this comment.
//
// Tests that need a tool outside Go (kcat, node with the kafkajs packages
// installed by `npm ci` in js/) skip when it is missing, except when the CI
// environment variable is "true": there a missing tool fails the test, so CI
// never passes by skipping. .ci/run installs everything they need.
//
// CAIRN_CRASH_CYCLES sets how many kill-and-verify cycles the crash test runs
// (default 5).
package integration
