// Package faultproxy is a userspace TCP proxy for tests that need a bad
// network between processes (tc netem is not available on the machines the
// tests run on). A Proxy listens on a loopback port and forwards each
// connection to one target; each direction has a fault, switchable at run
// time: Pass, Blackhole (read and hold, deliver nothing; delivered in order
// when healed), Reset (every connection reset, new ones at accept),
// Delay (fixed plus jitter per chunk, order kept) and Drop (a chunk lost
// at random resets its connection: TCP cannot lose bytes and go on, so a
// lossy link is modelled as one cut at random). CloseAll closes every
// connection cleanly.
//
// It is test infrastructure held to production rules: everything is
// bounded (ChunkBytesMax per read, HeldBytesMax per connection and
// direction, after which it stops reading so the sender's socket fills as
// behind a dead link, ConnectionsMax), and Close returns after every
// goroutine has ended. Per connection it runs four goroutines, a reader and
// a writer per direction, and one that closes the connection when they
// end. A reset on one side is passed on as a reset to the other, an end of
// stream as a half-close. It uses the wall clock: it stands for the
// network, outside any node.
package faultproxy
