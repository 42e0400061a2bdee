package cluster

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/raftlog"
)

// deletionSuffix ends the name of a partition directory whose topic is being
// deleted. Part of the on-disk format: DeleteTopic renames <topic>-<n> to
// <topic>-<n>.<topic id, 32 hex digits>-delete and syncs the data directory
// before it proposes the deletion to the metadata group, and start-up
// removes such directories and no others. A directory without the mark is
// never deleted, so a lost metadata group or a wrong data directory costs a
// refused start, not data.
const deletionSuffix = "-delete"

func partitionDirName(topic string, index int32) string {
	return topic + "-" + strconv.Itoa(int(index))
}

func deletionDirName(topic string, index int32, id [16]byte) string {
	return partitionDirName(topic, index) + "." + hex.EncodeToString(id[:]) + deletionSuffix
}

// parseDeletionDir returns the partition directory name and topic id that a
// directory marked for deletion carries.
func parseDeletionDir(name string) (partitionDir string, id [16]byte, ok bool) {
	rest, found := strings.CutSuffix(name, deletionSuffix)
	dot := strings.LastIndexByte(rest, '.')
	if !found || dot <= 0 {
		return "", id, false
	}
	raw, err := hex.DecodeString(rest[dot+1:])
	if err != nil || len(raw) != len(id) || !looksLikePartitionDir(rest[:dot]) {
		return "", id, false
	}
	copy(id[:], raw)
	return rest[:dot], id, true
}

func looksLikePartitionDir(name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return false
	}
	_, err := strconv.ParseUint(name[i+1:], 10, 31)
	return err == nil
}

// dataDirPlan is what start-up does with the entries of the data directory.
type dataDirPlan struct {
	// unknown are partition directories no topic owns, not marked: start-up
	// refuses to run beside them.
	unknown []string
	// marked are directories marked for deletion: start-up removes them.
	marked []string
	// deleting are listed topics with a directory marked under their id: a
	// deletion stopped part way, which start-up finishes.
	deleting map[string]bool
}

// planDataDir sorts the entries of the data directory against the topics
// of the metadata group's applied state. It is pure: the caller lists and
// acts.
func planDataDir(names []string, topics []*metav1.Topic) dataDirPlan {
	owned := map[string]bool{}
	byID := map[[16]byte]string{}
	for _, t := range topics {
		byID[[16]byte(t.Id)] = t.Name
		for i := range int32(len(t.Partitions)) {
			owned[partitionDirName(t.Name, i)] = true
		}
	}
	plan := dataDirPlan{deleting: map[string]bool{}}
	for _, name := range names {
		if dir, id, ok := parseDeletionDir(name); ok {
			plan.marked = append(plan.marked, name)
			if topic, listed := byID[id]; listed && owned[dir] && strings.HasPrefix(dir, topic+"-") {
				plan.deleting[topic] = true
			}
			continue
		}
		if looksLikePartitionDir(name) && !owned[name] {
			plan.unknown = append(plan.unknown, name)
		}
	}
	return plan
}

// unknownNamesMax bounds the directories an error names; a wrong data
// directory may hold thousands.
const unknownNamesMax = 20

func unknownPartitionsError(dataDir string, unknown []string) error {
	names := strings.Join(unknown[:min(len(unknown), unknownNamesMax)], ", ")
	if len(unknown) > unknownNamesMax {
		names += fmt.Sprintf(" and %d more", len(unknown)-unknownNamesMax)
	}
	return fmt.Errorf("%w in data dir %s: %s. Nothing was deleted. If the data dir is the wrong one, start with the right one; "+
		"if its metadata (%s and %s/) was lost or restored from an older backup, restore the one that lists these topics; "+
		"otherwise move these directories out of %s (or delete them) and start again",
		ErrUnknownPartitions, dataDir, names, controller.NodeFileName, controller.MetaDirName, dataDir)
}

// markForDeletion renames the partition directories of a topic to their
// deletion names and syncs the data directory: from then on the deletion
// is decided, and a restart finishes it. Directories already marked (or never
// created) are skipped. It returns the names it marked.
//
// groups, when given, are the partitions' Raft groups: a directory whose
// raft-state names another group is left. A node replaying an older
// metadata state deletes the topic as it was then, and a topic created
// again under the name since may have its replica there (startReplica
// waits for the state to catch up rather than open it): deleting that
// directory would restart the new replica empty under its id, a voter
// without the log it acknowledged.
func (c *Cluster) markForDeletion(topic string, id [16]byte, partitions int32, groups []uint64) ([]string, error) {
	var marked []string
	for i := int32(0); i < partitions; i++ {
		if int(i) < len(groups) && groups[i] != 0 {
			s, err := raftlog.ReadState(c.env.FS, path.Join(c.cfg.DataDir, partitionDirName(topic, i), raftStateFile))
			if err == nil && s.GroupID != groups[i] {
				c.env.Logger.Warn("leaving a directory of a deleted topic's name that holds another group's replica",
					"topic", topic, "partition", i, "deleted_group", groups[i], "group", s.GroupID, "replica", s.ReplicaID)
				continue
			}
		}
		to := deletionDirName(topic, i, id)
		err := c.env.FS.Rename(path.Join(c.cfg.DataDir, partitionDirName(topic, i)), path.Join(c.cfg.DataDir, to))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return marked, fmt.Errorf("mark partition %d for deletion: %w", i, err)
		}
		marked = append(marked, to)
	}
	if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
		return marked, fmt.Errorf("mark for deletion: %w", err)
	}
	return marked, nil
}
