package cluster

import (
	"fmt"
	"path"

	"github.com/cairnlog/cairn/journal"
	"github.com/cairnlog/cairn/partition"
)

// journalDirName is the node journal's directory in the data directory
// (package journal). It is not a partition directory's name: those end in
// -INDEX.
const journalDirName = "journal"

// openSyncer starts a single node's partition.Syncer with its journal,
// reading what the journal holds from the last run for the partitions to
// replay as they open.
func (c *Cluster) openSyncer() error {
	s, err := partition.NewSyncer(c.env.Clock, c.cfg.syncWorkers())
	if err != nil {
		return err
	}
	if c.cfg.JournalMinPartitions >= 0 {
		j, records, err := journal.Open(c.env.FS, path.Join(c.cfg.DataDir, journalDirName), journal.Options{})
		if err != nil {
			s.Close()
			return fmt.Errorf("open node journal: %w", err)
		}
		s.UseJournal(j, records, c.cfg.JournalMinPartitions, c.env.Logger)
	}
	c.syncer = s
	return nil
}

// offlineJournalKey says whether key names a partition of this node that
// could not open: the journal keeps its records for the next start.
// Callers hold no lock.
func (c *Cluster) offlineJournalKey(key journal.Key) bool {
	for _, t := range c.Topics() {
		if t.ID != key.TopicID {
			continue
		}
		for _, s := range t.Partitions {
			if s.Partition == nil && partitionDirName(t.Name, s.Index) == key.Name {
				return true
			}
		}
	}
	return false
}
