// Package sim is the deterministic simulator of replicated groups: a
// Network (drop, duplicate, delay and so reorder, cut links, partitions)
// and a Cluster running the replicas of one group, their flushers and the
// network on one goroutine under a virtual clock in milliseconds. Every
// random choice comes from one seed; raft's own election jitter comes from
// crypto/rand, which tests pin with testing/cryptotest.SetGlobalRandom, so
// a seed replays a run exactly.
//
// The simulator is test support and stands outside the node: it uses
// math/rand/v2 directly, and env/guard_test.go does not scan it.
package sim
