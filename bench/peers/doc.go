// Package peers holds the programs bench/run uses to measure Cairn's peers
// on the same machine in the same run: jsbench drives NATS JetStream. It is
// its own module so that Cairn itself does not depend on the peers' clients.
package peers
