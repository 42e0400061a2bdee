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
// What is not threaded through Env on purpose: latency measurements of
// socket I/O and real socket deadlines in package kafka, which describe the
// operating system's network and stay on the wall clock until the network
// becomes part of Env too.
package env
