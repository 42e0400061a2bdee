package cluster

import (
	"encoding/hex"
	"fmt"
	"path"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/raftlog"
)

// Stale replicas. A cluster node applies deletions other nodes propose,
// and may be down while they do: its directories of a deleted topic are
// then unmarked (and, were the topic created again under its name, sit
// at the new partitions' places). Each replicated partition's raft-state
// names its group, so such a directory is recognised as this node's
// replica of a group the cluster allocated and no longer has: it is
// marked like any deleted partition and removed. A directory whose
// group the state does not show as allocated (a metadata group restored
// from an older backup) is never taken for stale: start-up refuses it.

// raftStateFile is raftlog's raft-state file in a partition directory
// (part of raftlog's on-disk format).
const raftStateFile = "raft-state"

// staleTopicID is the topic id a stale replica's deletion mark carries:
// its topic is not known from the directory, and no topic has the zero id.
var staleTopicID [16]byte

// staleGroup returns the group of the replica in dir when it is one of
// this node's replicas of a group the cluster allocated (below
// NextGroupId) that the state holds no more; want is the group expected
// at dir (0: none), never stale. The state is read only for a directory
// holding another group's replica.
func (c *Cluster) staleGroup(dir string, want uint64, state func() *metav1.State) (uint64, bool) {
	s, err := raftlog.ReadState(c.env.FS, path.Join(c.cfg.DataDir, dir, raftStateFile))
	if err != nil || s.GroupID == 0 || s.GroupID == want || meta.NodeOf(s.ReplicaID) != c.cfg.NodeID {
		return 0, false
	}
	st := state()
	if s.GroupID >= st.GetNextGroupId() {
		return 0, false
	}
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.GroupId == s.GroupID {
				return 0, false
			}
		}
	}
	return s.GroupID, true
}

// markStale marks the stale replicas among unknown directories and
// returns the rest and the marked names.
func (c *Cluster) markStale(unknown []string, st *metav1.State) (rest, marked []string, err error) {
	for _, dir := range unknown {
		group, stale := c.staleGroup(dir, 0, func() *metav1.State { return st })
		if !stale {
			rest = append(rest, dir)
			continue
		}
		c.env.Logger.Warn("removing the replica of a topic deleted while this node was away", "dir", dir, "group", group)
		name, err := c.markStaleDir(dir)
		if err != nil {
			return nil, nil, err
		}
		marked = append(marked, name)
	}
	if len(marked) > 0 {
		if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
			return nil, nil, fmt.Errorf("mark stale replicas: %w", err)
		}
	}
	return rest, marked, nil
}

// markStaleDir renames a stale replica's directory to its deletion name.
func (c *Cluster) markStaleDir(dir string) (string, error) {
	to := dir + "." + hex.EncodeToString(staleTopicID[:]) + deletionSuffix
	if err := c.env.FS.Rename(path.Join(c.cfg.DataDir, dir), path.Join(c.cfg.DataDir, to)); err != nil {
		return "", fmt.Errorf("mark the stale replica %s for deletion: %w", dir, err)
	}
	return to, nil
}

// removeStaleAt removes, before a replica of group opens at dir, an older
// group's replica left there by a topic deleted and created again while
// this node was away.
func (c *Cluster) removeStaleAt(dir string, group uint64) error {
	old, stale := c.staleGroup(dir, group, c.ctl.State)
	if !stale {
		return nil
	}
	c.env.Logger.Warn("replacing the replica of a topic deleted while this node was away", "dir", dir, "group", old, "new_group", group)
	return c.removeReplicaDir(dir)
}

// removeReplicaDir removes a replica's directory: marked for deletion
// (durably, so a crash midway finishes the removal at the next start),
// then removed.
func (c *Cluster) removeReplicaDir(dir string) error {
	name, err := c.markStaleDir(dir)
	if err == nil {
		err = c.env.FS.SyncDir(c.cfg.DataDir)
	}
	if err != nil {
		return err
	}
	return c.removeMarked([]string{name})
}
