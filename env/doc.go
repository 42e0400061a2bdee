// Package env is a node's environment: its clock, its randomness, its
// filesystem and its logger, in one value (Env) that components take instead
// of reaching for the wall clock, crypto/rand or the operating system.
//
// Production runs on Real(). Tests, and later a simulation that runs a whole
// cluster in one process from one seed, put a ManualClock (time moves only
// when Advance says so, and due timers fire in deadline order), a seeded Rand
// and an in-memory or crash-simulating vfs.FS in its place, so that the same
// seed gives the same run.
//
// WithTimeout is context.WithTimeout on an Env's clock: a node bounds its
// own waits (its start, a join, a produce request's timeout) with it, so
// they end on simulated time in a simulation; on the real clock it is
// context.WithTimeout itself.
//
// TestNodeCodeUsesTheEnv keeps it so: it fails, naming the line, when code
// of a node package reads the wall clock, sets a runtime timer (a
// context.WithTimeout or WithDeadline included) or draws randomness
// itself. Its notYetThreaded list names the uses left (the Kafka front
// end's and the transport's socket deadlines, the bounds of a TLS
// handshake and a PostgreSQL replication read on real sockets, the
// Kafka listener's pause after a failed accept) and why.
package env
