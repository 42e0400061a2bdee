// Package peers holds the programs bench/run uses to measure Cairn's peers
// on the same machine in the same run, and to draw the run's figures:
// jsbench drives NATS JetStream, pgappend drives PostgreSQL as an event
// store, and plot draws the PNG plots. It is its own module so that Cairn
// itself does not depend on the peers' clients or the plotting library.
package peers
