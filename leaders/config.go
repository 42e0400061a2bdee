package leaders

import (
	"fmt"
	"time"

	"github.com/cairnlog/cairn/transport"
)

// Config configures a node's leader table. Zero durations take the
// defaults named beside them (WithDefaults); Validate checks the result.
type Config struct {
	NodeID      uint64 // this node, at least 1
	Incarnation uint64 // this node's incarnation, in [1, 2^20)
	// BootID tells this process's heartbeats from those of an earlier
	// process of the same incarnation (a restart without a new
	// incarnation counts its sequence from 1 again). New draws it from
	// the env's Rand when zero; a Table takes it as it is.
	BootID uint64

	// Interval is the longest a node stays silent: with nothing to report
	// it sends an empty delta this often, so its peers know it is alive.
	// 200 ms.
	Interval time.Duration
	// DeltaGap is the least time between two heartbeats when leadership
	// changes: a change goes out at once after a quiet spell, and the
	// changes of a failover moving many groups share a few heartbeats.
	// 10 ms.
	DeltaGap time.Duration
	// FullInterval is how often a node sends every group it leads rather
	// than the changes, so a peer that missed a delta heals. 10 s.
	FullInterval time.Duration
	// LivenessTimeout is how long a silent node stays alive: after it,
	// its groups' leaders are unknown and Alive reports it down. 3 s, a
	// few of replica's election timeouts (0.6–1.2 s), so a slow network
	// is not taken for a dead node.
	LivenessTimeout time.Duration
}

// Defaults (docs/design/replication.md §6.3).
const (
	IntervalDefault        = 200 * time.Millisecond
	DeltaGapDefault        = 10 * time.Millisecond
	FullIntervalDefault    = 10 * time.Second
	LivenessTimeoutDefault = 3 * time.Second
)

// WithDefaults returns c with every zero duration set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.Interval, IntervalDefault)
	setDefault(&c.DeltaGap, DeltaGapDefault)
	setDefault(&c.FullInterval, FullIntervalDefault)
	setDefault(&c.LivenessTimeout, LivenessTimeoutDefault)
	return c
}

func setDefault(v *time.Duration, d time.Duration) {
	if *v == 0 {
		*v = d
	}
}

// Validate reports a configuration the table cannot work with.
func (c Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return fmt.Errorf("leaders config: node id must be at least 1")
	case c.Incarnation == 0 || c.Incarnation >= 1<<transport.IncarnationBits:
		return fmt.Errorf("leaders config: incarnation %d out of [1, 2^%d)", c.Incarnation, transport.IncarnationBits)
	case c.Interval <= 0 || c.DeltaGap <= 0:
		return fmt.Errorf("leaders config: interval %v and delta gap %v must be positive", c.Interval, c.DeltaGap)
	case c.DeltaGap > c.Interval:
		return fmt.Errorf("leaders config: delta gap %v exceeds the interval %v", c.DeltaGap, c.Interval)
	case c.FullInterval < c.Interval:
		return fmt.Errorf("leaders config: full interval %v below the interval %v", c.FullInterval, c.Interval)
	case c.LivenessTimeout <= 2*c.Interval:
		// A single lost or late heartbeat must not take a node for dead.
		return fmt.Errorf("leaders config: liveness timeout %v must exceed two intervals (%v)", c.LivenessTimeout, 2*c.Interval)
	}
	return nil
}
