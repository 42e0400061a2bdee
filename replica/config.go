package replica

import (
	"errors"
	"fmt"
)

// Config is one replica's Raft configuration. Zero fields take the defaults
// of WithDefaults; Validate checks the result.
type Config struct {
	// ID is this replica's Raft id (node id << 20 | incarnation); never 0.
	ID uint64
	// GroupID names the group in logs (0 = the metadata group).
	GroupID uint64
	// Applied is the index the state machine has durably applied: raft
	// re-delivers only entries after it. 0 means "from the snapshot".
	// New refuses one past the commit index (the state machine is ahead
	// of its log), which raft would panic on.
	Applied uint64

	// HeartbeatTick and ElectionTick count Ticks (50 ms each by default):
	// 2 and 12 give an election timeout of 0.6–1.2 s, for failover under 2 s.
	HeartbeatTick int
	ElectionTick  int

	// Limits on what one Ready and the in-flight window may hold.
	MaxSizePerMsgBytes             uint64
	MaxInflightMsgs                int
	MaxInflightBytes               uint64
	MaxCommittedSizePerReadyBytes  uint64
	MaxUncommittedEntriesSizeBytes uint64
}

// Defaults (docs/design/replication.md §3.2).
const (
	defaultHeartbeatTick                  = 2
	defaultElectionTick                   = 12
	defaultMaxSizePerMsgBytes             = 1 << 20
	defaultMaxInflightMsgs                = 64
	defaultMaxInflightBytes               = 8 << 20
	defaultMaxCommittedSizePerReadyBytes  = 16 << 20
	defaultMaxUncommittedEntriesSizeBytes = 64 << 20
)

// WithDefaults returns c with every zero limit set to its default.
func (c Config) WithDefaults() Config {
	setDefault(&c.HeartbeatTick, defaultHeartbeatTick)
	setDefault(&c.ElectionTick, defaultElectionTick)
	setDefault(&c.MaxSizePerMsgBytes, defaultMaxSizePerMsgBytes)
	setDefault(&c.MaxInflightMsgs, defaultMaxInflightMsgs)
	setDefault(&c.MaxInflightBytes, defaultMaxInflightBytes)
	setDefault(&c.MaxCommittedSizePerReadyBytes, defaultMaxCommittedSizePerReadyBytes)
	setDefault(&c.MaxUncommittedEntriesSizeBytes, defaultMaxUncommittedEntriesSizeBytes)
	return c
}

func setDefault[T int | uint64](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Validate reports the first setting raft would refuse or that breaks the
// driver's assumptions.
func (c Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("replica config: id 0 is reserved for \"no replica\"")
	case c.HeartbeatTick <= 0:
		return fmt.Errorf("replica config: heartbeat tick %d must be positive", c.HeartbeatTick)
	case c.ElectionTick <= c.HeartbeatTick:
		return fmt.Errorf("replica config: election tick %d must exceed heartbeat tick %d", c.ElectionTick, c.HeartbeatTick)
	case c.MaxInflightMsgs <= 0:
		return fmt.Errorf("replica config: max inflight messages %d must be positive", c.MaxInflightMsgs)
	case c.MaxInflightBytes != 0 && c.MaxInflightBytes < c.MaxSizePerMsgBytes:
		return fmt.Errorf("replica config: max inflight bytes %d below max message size %d", c.MaxInflightBytes, c.MaxSizePerMsgBytes)
	}
	return nil
}
