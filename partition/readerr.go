package partition

import (
	"fmt"

	"github.com/cairnlog/cairn/storage"
)

// classifyReadError maps a failed storage read to the partition's
// vocabulary. Stored bytes that are not valid batches (a bit flip, two
// processes writing one segment, a file cut short) fail every later read
// the same way, so they take the partition offline: it is then reported
// (log line, metrics, /healthz, metadata) and refuses writes that nobody
// could read back; a replica's owner is told (ReplicaConfig.Damaged). Any
// other failed read (an I/O error, which may pass)
// fails only that read.
func (p *Partition) classifyReadError(err error, offset int64) error {
	if StoredBytesInvalid(err) {
		p.storedDamage(fmt.Errorf("read at offset %d: %w", offset, err))
		return p.Err()
	}
	return fmt.Errorf("%w: %s-%d at %d: %v", ErrRead, p.topic, p.index, offset, err)
}

// storedDamage takes the partition offline for damaged stored bytes and
// tells a replica's owner, once (ReplicaConfig.Damaged).
func (p *Partition) storedDamage(err error) {
	if p.fail(err) && p.repl != nil && p.repl.damaged != nil {
		p.repl.damaged(p.Err())
	}
}

// StoredBytesInvalid reports errors of a read or an open that mean the
// stored log is damaged, not that a read failed.
func StoredBytesInvalid(err error) bool { return storage.IsDamage(err) }
