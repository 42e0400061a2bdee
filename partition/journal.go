package partition

import (
	"fmt"
	"path"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/journal"
)

// replayJournal appends to the recovered log the batches of the node
// journal's records that it lacks: a round acknowledged them once the
// journal was synced, while the segment may have lost them in a crash. A
// record whose batches the log holds is skipped; one starting past the
// log end means acknowledged batches are lost, and the partition does not
// open.
func (p *Partition) replayJournal(nowMs int64) error {
	if p.journalKey == (journal.Key{}) {
		return nil
	}
	replayed := 0
	for _, r := range p.syncer.replayRecords(p.journalKey) {
		next := p.log.NextOffset()
		if r.Next <= next {
			continue
		}
		if r.First > next {
			return fmt.Errorf("node journal holds offsets %d to %d but the log ends at %d: acknowledged batches are missing", r.First, r.Next-1, next)
		}
		data, err := batchesFrom(r.Data, next)
		if err != nil {
			return fmt.Errorf("node journal record of offsets %d to %d: %w", r.First, r.Next-1, err)
		}
		if err := p.log.Append(data, nowMs); err != nil {
			return fmt.Errorf("replay node journal: %w", err)
		}
		replayed++
	}
	if replayed > 0 {
		p.logger.Info("replayed batches from the node journal", "records", replayed, "log_end", p.log.NextOffset())
	}
	return nil
}

// journalKey names the partition in its Syncer's journal: zero without a
// Syncer or a topic id.
func journalKey(dir string, cfg Config) journal.Key {
	if cfg.Syncer == nil || cfg.TopicID == ([16]byte{}) {
		return journal.Key{}
	}
	return journal.Key{Name: path.Base(dir), TopicID: cfg.TopicID}
}

// batchesFrom returns the batches of data from the one starting at offset
// on.
func batchesFrom(data []byte, offset int64) ([]byte, error) {
	for rest := data; len(rest) > 0; {
		h, _, after, err := batch.Next(rest)
		if err != nil {
			return nil, err
		}
		switch {
		case h.BaseOffset == offset:
			return rest, nil
		case h.NextOffset() > offset:
			return nil, fmt.Errorf("offset %d is inside the batch at %d", offset, h.BaseOffset)
		}
		rest = after
	}
	return nil, fmt.Errorf("no batch starts at offset %d", offset)
}
