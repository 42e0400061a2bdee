// Package sim is the deterministic simulator of replicated groups: a
// Network (drop, duplicate, delay and so reorder, one-way cuts, isolation,
// splits) and a Cluster running the replicas of one group, their flushers
// and the network on one goroutine under a virtual clock in milliseconds.
// Every random choice comes from one seed; raft's own election jitter comes
// from crypto/rand, which tests pin with testing/cryptotest.SetGlobalRandom,
// so a seed replays a run exactly.
//
// Messages cross the Network as bytes (proto.Marshal), so no replica sees
// another's message structs. A Node's MemStorage survives Crash (losing
// what was not synced); its Replica and state machine do not. With
// Config.NewNode the storage is opened with the state machine at each
// start (a partition's Raft log over a crash-simulating filesystem), and
// the caller crashes what it is opened from. Snapshots are reported
// delivered once sent (Replica.SnapshotsSent), as the node's Scheduler
// does, so a snapshot the Network drops is resent. Config.AfterSync
// runs after each completed Sync of a node's storage, for a state machine
// that answers on local durability (a partition's acks=1).
//
// The simulator is test support and stands outside the node: it uses
// math/rand/v2 directly, and env/guard_test.go does not scan it.
package sim
