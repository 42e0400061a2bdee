// Package replica drives one Raft group (go.etcd.io/raft/v3) over a Storage.
//
// Storage is the seam to the durable log: writes are visible at once and
// durable only after Sync, which may run on another goroutine. MemStorage is
// its in-memory implementation with crash semantics (Crash keeps what the
// last completed Sync covered), for tests and the simulator.
package replica
