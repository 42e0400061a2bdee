package cluster

import (
	"errors"
	"fmt"
	"maps"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// The replica manager: the partitions open on this node follow the applied
// state of the metadata group. reconcile compares the state with the topic
// map and opens, grows, reconfigures and drops partitions to match. It runs
// in the caller of a topic change once its command applied here (so the
// call returns with its partitions open), and on its own goroutine after
// every applied batch (reconcileLoop), never on the group's worker: opening
// a partition reads its log, and the apply path must not wait on disks.
// Both take mu, and reconcile is idempotent, so whichever runs second finds
// nothing to do. The state is read under mu, and a state older than the one
// last reconciled is ignored: a reconcile that read its state before
// another took mu would otherwise undo the newer one (drop a topic created
// meanwhile, with its acknowledged records, or reopen a deleted one).

// reconcileLoop reconciles after the metadata group applied entries.
func (c *Cluster) reconcileLoop() {
	defer c.done.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.applied:
			if err := c.reconcile(); err != nil {
				c.env.Logger.Error("applying the metadata state to the partitions", "err", err)
			}
		}
	}
}

// reconcile makes the topic map and the open partitions those of the
// applied state. It returns the errors of config changes applied to open
// partitions; partitions that fail to open are offline with their error.
func (c *Cluster) reconcile() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconcileTo(c.ctl.State())
}

// reconcileTo makes the topic map and the open partitions those of st,
// unless st is older than the state reconciled last. Callers hold mu.
func (c *Cluster) reconcileTo(st *metav1.State) error {
	if st.GetAppliedIndex() < c.reconciled {
		return nil
	}
	c.reconciled = st.GetAppliedIndex()
	c.updateACLs(st)
	c.updateClientQuotas(st)
	want := make(map[string]*metav1.Topic, len(st.Topics))
	for _, t := range st.Topics {
		want[t.Name] = t
	}
	for name, t := range c.topics {
		if w, ok := want[name]; !ok || [16]byte(w.Id) != t.ID {
			c.dropTopic(t)
		}
	}
	var errs []error
	opened := false
	for _, w := range st.Topics {
		n, err := c.reconcileTopic(w)
		opened = opened || n > 0
		errs = append(errs, err)
	}
	if c.cfg.clustered() {
		c.removeDeferred(st)
	}
	c.signalLeaders()
	if opened {
		// New partition directories are durable only once the data
		// directory is synced; without it a power cut could lose a
		// partition whose records were acknowledged as durable.
		if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("sync the data dir after opening partitions: %w", err))
		}
	}
	return errors.Join(errs...)
}

// reconcileTopic opens a new topic's partitions, the added ones of a grown
// topic, follows moves of replicas onto and off this node
// (followPlacement), and applies changed configs. It returns how many partitions it
// opened. Callers hold mu.
func (c *Cluster) reconcileTopic(w *metav1.Topic) (int, error) {
	cur, ok := c.topics[w.Name]
	if ok && len(cur.Partitions) == len(w.Partitions) && maps.Equal(cur.Configs, w.Configs) && !c.placementChanged(cur, w) {
		return 0, nil
	}
	pcfg, err := c.partitionConfig(w.Configs)
	if err != nil {
		// The machine validated these configs; a node-wide limit cannot
		// make them invalid, so this is a bug, not an operating error.
		return 0, fmt.Errorf("topic %s: %w", w.Name, err)
	}
	next := &Topic{Name: w.Name, ID: [16]byte(w.Id), Configs: maps.Clone(w.Configs)}
	var errs []error
	moved := 0
	if ok {
		if !maps.Equal(cur.Configs, w.Configs) {
			for _, s := range cur.Partitions {
				if s.Partition != nil {
					errs = append(errs, s.Partition.SetConfig(pcfg))
				}
			}
		}
		var slots []*PartitionSlot
		slots, moved = c.followPlacement(cur, w, pcfg)
		next.Partitions = append(next.Partitions, slots...)
	}
	opened := moved + len(w.Partitions) - len(next.Partitions)
	for i := int32(len(next.Partitions)); i < int32(len(w.Partitions)); i++ {
		next.Partitions = append(next.Partitions, c.openSlot(w.Name, w.Partitions[i], pcfg))
	}
	c.topics[w.Name] = next
	return opened, errors.Join(errs...)
}

// dropTopic closes the partitions of a topic the state no longer holds and
// removes their directories, marking them first. Callers hold mu. On this
// node DeleteTopic has marked them before its proposal, so this only
// finds them gone.
func (c *Cluster) dropTopic(t *Topic) {
	delete(c.topics, t.Name)
	closeSlots(c, t)
	c.forgetGroups(t)
	marked, err := c.markForDeletion(t.Name, t.ID, int32(len(t.Partitions)), slotGroups(t))
	if err == nil {
		err = c.removeMarked(marked)
	}
	if err != nil {
		c.env.Logger.Error("removing the directories of a deleted topic", "topic", t.Name, "err", err)
	}
}

// slotGroups are the Raft groups of a topic's partitions (0 on a single
// node).
func slotGroups(t *Topic) []uint64 {
	groups := make([]uint64, len(t.Partitions))
	for i, s := range t.Partitions {
		groups[i] = s.Group
	}
	return groups
}

// closeSlots closes a topic's open partitions; its data is being deleted,
// so a close error (a partition already offline says why again) changes
// nothing.
func closeSlots(c *Cluster, t *Topic) {
	for _, s := range t.Partitions {
		if err := c.closeSlot(s); err != nil {
			c.env.Logger.Warn("closing a partition of a deleted topic", "topic", t.Name, "partition", s.Index, "err", err)
		}
	}
}

// finishDeletion finishes at start the deletion of a topic some of whose
// directories are marked: the rest are marked, then the deletion is
// proposed. It returns the directories it marked, for the caller to remove
// with the others.
func (c *Cluster) finishDeletion(t *metav1.Topic) ([]string, error) {
	groups := make([]uint64, len(t.Partitions))
	for i, p := range t.Partitions {
		groups[i] = p.GroupId
	}
	marked, err := c.markForDeletion(t.Name, [16]byte(t.Id), int32(len(t.Partitions)), groups)
	if err != nil {
		return nil, err
	}
	if _, err := c.propose(deleteCommand(t.Name, [16]byte(t.Id))); err != nil {
		return nil, err
	}
	return marked, nil
}

func deleteCommand(name string, id [16]byte) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_DeleteTopic{DeleteTopic: &metav1.DeleteTopic{Name: name, Id: id[:]}}}
}
