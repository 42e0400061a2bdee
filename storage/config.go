package storage

import (
	"errors"
	"fmt"
	"math"
)

// Config is the part of a topic's configuration that shapes its files.
type Config struct {
	// SegmentBytes: the active segment rolls before an append would take it
	// past this size. A single append larger than this still goes into one
	// (new, empty) segment. At most math.MaxUint32, because index entries
	// hold 32-bit file positions.
	SegmentBytes int64
	// SegmentMs: the active segment rolls when its first append is older
	// than this, measured with the nowMs passed to Append.
	SegmentMs int64
	// IndexIntervalBytes: a batch gets an offset-index entry when it starts at
	// least this many bytes after the previous entry; it bounds how far a
	// read scans from an index entry. 0 indexes every batch.
	IndexIntervalBytes int64
}

// Defaults.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentMs          = 7 * 24 * 60 * 60 * 1000
	DefaultIndexIntervalBytes = 4096
)

// DefaultConfig returns the defaults: 1 GiB segments, rolled at least weekly,
// an index entry every 4 KiB.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       DefaultSegmentBytes,
		SegmentMs:          DefaultSegmentMs,
		IndexIntervalBytes: DefaultIndexIntervalBytes,
	}
}

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = errors.New("storage: invalid config")

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes <= 0 || c.SegmentBytes > math.MaxUint32:
		return fmt.Errorf("segment bytes %d not in [1, %d]: %w", c.SegmentBytes, uint32(math.MaxUint32), ErrInvalidConfig)
	case c.SegmentMs <= 0:
		return fmt.Errorf("segment ms %d not positive: %w", c.SegmentMs, ErrInvalidConfig)
	case c.IndexIntervalBytes < 0 || c.IndexIntervalBytes > math.MaxUint32:
		return fmt.Errorf("index interval bytes %d not in [0, %d]: %w", c.IndexIntervalBytes, uint32(math.MaxUint32), ErrInvalidConfig)
	}
	return nil
}
