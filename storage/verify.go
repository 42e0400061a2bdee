package storage

import (
	"fmt"

	"github.com/cairnlog/cairn/batch"
)

// verifyReadBytes bounds one read of Verify.
const verifyReadBytes = 1 << 20

// Verify reads every batch from the log start to its end, checking each
// one's CRC and that its offsets follow the batch before it; the first
// damaged one is a *CorruptionError. Open checks only what follows the
// recovery point, since reading a large log whole would make every start
// as slow as its size; a small log that must refuse to start on any
// damage (a node's metadata log) calls this after Open.
func (l *Log) Verify() error {
	for from, end := l.StartOffset(), l.NextOffset(); from < end; {
		data, err := l.Read(from, verifyReadBytes, end)
		if IsDamage(err) {
			return corruption(l.dir, "verify at offset %d: %v", from, err)
		}
		if err != nil {
			return fmt.Errorf("verify log %s at offset %d: %w", l.dir, from, err)
		}
		if len(data) == 0 {
			return nil // compaction removed every batch after from
		}
		for len(data) > 0 {
			h, _, rest, err := batch.Next(data)
			if err != nil {
				return corruption(l.dir, "verify at offset %d: %v", from, err)
			}
			from, data = h.NextOffset(), rest
		}
	}
	return nil
}
