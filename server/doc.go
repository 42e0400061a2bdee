// Package server wires Cairn's components into one process: it opens the
// cluster on the data directory, serves the Kafka protocol and the HTTP admin
// endpoints (/metrics, /healthz), and shuts everything down in order.
package server
