// Package topicrules holds the pure rules every topic obeys: Kafka's topic
// name rules, every supported topic config (its default, validation and
// effect on a partition's config), and the guard on leaving the stream
// policy. It does no I/O and keeps no state, so both the node's topic
// manager (package cluster) and the metadata group's state machine (package
// meta, which validates every command again when it applies it) check a
// topic with the same code and refuse it with the same errors.
package topicrules
