package controller

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// bootstrapIfNew gives a new node's empty meta log the bootstrap
// snapshot: at index 1, term 1, the initial voters, the initial state, or
// joins the cluster its peers already hold; then it writes node.json. Only
// a new node may: an empty log beside an existing node.json is a node that
// lost its meta log and must not vote as if it had never voted, unless it
// is the own log created empty for a join (Config.Join, or a rejoin), which
// has never voted and still waits for the leader's snapshot. A log without
// node.json is a first start interrupted before node.json was written only
// while it holds the bootstrap snapshot alone and no vote; that one is
// kept (with its cluster id, which a single node drew at random), anything
// else is refused.
func (c *Controller) bootstrapIfNew() error {
	empty := c.log == nil // no own meta log yet
	if !empty {
		var err error
		if empty, err = logIsEmpty(c.log); err != nil {
			return err
		}
	}
	switch {
	case empty && c.cfg.Join:
		if err := c.prepareJoinLog(); err != nil {
			return err
		}
	case empty && !c.identity.New && c.own != nil:
		// Created empty by a rejoin whose node.json was written: the
		// leader's snapshot has not arrived yet.
		if err := c.checkNeverVoted(); err != nil {
			return err
		}
		c.rejoined = true
		return nil
	case empty && !c.identity.New:
		return fmt.Errorf("controller: %s is empty but node.json exists: the meta log was lost", c.dir)
	case !empty && !c.identity.New:
		return nil
	case !empty:
		if err := c.resumeBootstrap(); err != nil {
			return err
		}
	default:
		if err := c.bootstrapOrRejoin(); err != nil {
			return err
		}
	}
	if err := writeIdentity(c.e.FS, c.cfg.DataDir, c.identity); err != nil {
		return err
	}
	c.identity.New = false
	return nil
}

// prepareJoinLog gives a joining node (Config.Join) its empty log: again
// after a restart (an empty log with no vote never acknowledged anything),
// or created empty under its replica id. A new node's own empty log left
// by a start that stopped before node.json was written may name an
// incarnation the node no longer has: it holds nothing, so it is made
// again. node.json follows the log, so a node.json beside no log at all
// is a lost log.
func (c *Controller) prepareJoinLog() error {
	if c.identity.New {
		if err := c.dropEmptyOwnLog(); err != nil {
			return err
		}
	}
	if c.log == nil {
		if !c.identity.New {
			return fmt.Errorf("controller: %s has no meta log but node.json exists: the meta log was lost", c.dir)
		}
		return c.createEmptyLog()
	}
	return c.checkNeverVoted()
}

// createEmptyLog creates the own meta log empty under this node's replica
// id, for a node that joins a running cluster.
func (c *Controller) createEmptyLog() error {
	own, err := createEmptyMetaLog(c.e, c.dir, c.cfg.MetaSegmentBytes, c.id)
	if err != nil {
		return err
	}
	c.log, c.own = own, own
	return nil
}

// dropEmptyOwnLog removes the own meta log when it holds nothing: one a
// join or rejoin created before the start stopped, without node.json. It
// never voted and holds no entry, so nothing is lost, and the node starts
// afresh (bootstraps, or joins under the incarnation it gets now).
func (c *Controller) dropEmptyOwnLog() error {
	if c.own == nil || !c.own.isEmpty() {
		return nil
	}
	if err := c.checkNeverVoted(); err != nil {
		return err
	}
	if err := c.own.Close(); err != nil {
		return fmt.Errorf("controller: close the empty meta log: %w", err)
	}
	c.log, c.own = nil, nil
	dir := filepath.Join(c.dir, metaLogDirName)
	if err := c.e.FS.RemoveAll(dir); err != nil {
		return fmt.Errorf("controller: remove the empty meta log %s: %w", dir, err)
	}
	if err := c.e.FS.SyncDir(c.dir); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	return nil
}

// bootstrapOrRejoin bootstraps a new node's empty log, unless its peers
// say the cluster exists: then the node lost its data (or starts after
// the others bootstrapped), and it joins under a new incarnation rather
// than vote as incarnation 1 with an empty log.
func (c *Controller) bootstrapOrRejoin() error {
	if err := c.dropEmptyOwnLog(); err != nil {
		return err
	}
	if len(c.cfg.Peers) > 1 {
		members, err := c.probePeers()
		if err != nil {
			return err
		}
		if len(members) > 0 {
			return c.rejoin(members)
		}
	}
	return c.bootstrap()
}

// checkNeverVoted refuses a log whose hard state holds a term or vote.
func (c *Controller) checkNeverVoted() error {
	hs, _, err := c.log.InitialState()
	if err != nil {
		return fmt.Errorf("controller: read the meta log's state: %w", err)
	}
	if hs.GetTerm() != 0 || hs.GetVote() != 0 {
		return fmt.Errorf("controller: %s has no entries but a vote in term %d: the meta log was lost", c.dir, hs.GetTerm())
	}
	return nil
}

// bootstrap writes and syncs the bootstrap snapshot.
func (c *Controller) bootstrap() error {
	st, err := c.initialState()
	if err != nil {
		return err
	}
	data, err := (&metaState{st}).encode(0)
	if err != nil {
		return err
	}
	snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(bootstrapIndex)), Term: new(uint64(1)),
		ConfState: &raftpb.ConfState{Voters: c.voters()},
	}}
	if c.log == nil {
		own, err := createMetaLog(c.e, c.dir, c.cfg.MetaSegmentBytes, c.id, snap.Metadata.ConfState, data)
		if err != nil {
			return err
		}
		c.log, c.own = own, own
		return nil
	}
	if err := c.log.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("controller: bootstrap the meta log: %w", err)
	}
	if err := c.log.Sync(); err != nil {
		return fmt.Errorf("controller: bootstrap the meta log: %w", err)
	}
	return nil
}

// resumeBootstrap accepts a log left by a first start that stopped before
// writing node.json: the bootstrap snapshot, nothing after it, no vote.
func (c *Controller) resumeBootstrap() error {
	snap, err := c.log.Snapshot()
	if err != nil {
		return fmt.Errorf("controller: read the meta log's snapshot: %w", err)
	}
	last, err := c.log.LastIndex()
	if err != nil {
		return fmt.Errorf("controller: read the meta log's last index: %w", err)
	}
	hs, _, err := c.log.InitialState()
	if err != nil {
		return fmt.Errorf("controller: read the meta log's state: %w", err)
	}
	if snap.GetMetadata().GetIndex() != bootstrapIndex || last != bootstrapIndex || hs.GetTerm() > 1 || hs.GetVote() != 0 {
		return fmt.Errorf("controller: %s holds a meta log past its bootstrap but node.json is missing", c.dir)
	}
	data, err := c.snapshotState(snap)
	if err != nil {
		return err
	}
	_, st, err := decodeMetaState(data)
	if err != nil {
		return fmt.Errorf("controller: bootstrap snapshot: %w", err)
	}
	if st.state.ClusterId != c.identity.ClusterID && (len(c.cfg.Peers) > 0 || c.cfg.Bootstrap != nil) {
		return fmt.Errorf("%w: bootstrapped for cluster %q, started for %q", ErrIdentityMismatch, st.state.ClusterId, c.identity.ClusterID)
	}
	c.identity.ClusterID = st.state.ClusterId // a single node's drawn id: the one the log has
	return nil
}

func logIsEmpty(l Log) (bool, error) {
	snap, err := l.Snapshot()
	if err != nil {
		return false, fmt.Errorf("controller: read the meta log's snapshot: %w", err)
	}
	last, err := l.LastIndex()
	if err != nil {
		return false, fmt.Errorf("controller: read the meta log's last index: %w", err)
	}
	return snap.GetMetadata().GetIndex() == 0 && last == 0, nil
}

// initialState is a new cluster's first state: the migrated one, or the
// initial voters ACTIVE at incarnation 1 with no topics.
func (c *Controller) initialState() (*metav1.State, error) {
	clusterID := c.identity.ClusterID
	if st := c.cfg.Bootstrap; st != nil {
		if st.AppliedIndex != bootstrapIndex || st.ClusterId != clusterID {
			return nil, fmt.Errorf("controller: migrated state at index %d of cluster %q, want %d of %q",
				st.AppliedIndex, st.ClusterId, bootstrapIndex, clusterID)
		}
		return st, nil
	}
	var brokers []*metav1.Broker
	if len(c.cfg.Peers) == 0 {
		brokers = append(brokers, &metav1.Broker{NodeId: c.identity.NodeID})
	}
	for node, addr := range c.cfg.Peers {
		brokers = append(brokers, &metav1.Broker{NodeId: node, RaftAddr: addr})
	}
	st, err := meta.Bootstrap(clusterID, brokers, bootstrapIndex)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return st, nil
}

// restoreAtStart builds the machine from the newest state: the
// meta-snapshot file when it is past the log's snapshot, else the log's
// snapshot. It returns the index the replica starts applying after: the
// state's, but at most the durable commit index, which raft refuses to
// start past (the hard state carrying the commit of the last applied
// entries may not have been synced). Raft then hands over again entries
// the state holds, which Apply skips.
func (c *Controller) restoreAtStart() (uint64, error) {
	snap, err := c.log.Snapshot()
	if err != nil {
		return 0, fmt.Errorf("controller: read the meta log's snapshot: %w", err)
	}
	hs, _, err := c.log.InitialState()
	if err != nil {
		return 0, fmt.Errorf("controller: read the meta log's state: %w", err)
	}
	if snap.GetMetadata().GetIndex() == 0 {
		return 0, c.startEmpty() // a joining node before the leader's snapshot
	}
	data, err := c.snapshotState(snap)
	if err != nil {
		return 0, err
	}
	fileData, err := vfs.ReadFile(c.e.FS, c.snapshotFile())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("controller: read %s: %w", c.snapshotFile(), err)
	default:
		_, st, err := decodeMetaState(fileData)
		if err != nil {
			return 0, fmt.Errorf("controller: %s: %w", c.snapshotFile(), err)
		}
		if st.state.AppliedIndex > snap.GetMetadata().GetIndex() {
			data = fileData
		}
	}
	next, st, err := decodeMetaState(data)
	if err != nil {
		return 0, fmt.Errorf("controller: start state: %w", err)
	}
	m, err := meta.New(st.state)
	if err != nil {
		return 0, fmt.Errorf("controller: start state: %w", err)
	}
	if m.ClusterID() != c.identity.ClusterID {
		return 0, fmt.Errorf("%w: meta state of cluster %q, node.json says %q", ErrIdentityMismatch, m.ClusterID(), c.identity.ClusterID)
	}
	c.machine, c.appliedNext, c.applied = m, next, m.AppliedIndex()
	c.snapshotIndex = c.applied
	return max(snap.GetMetadata().GetIndex(), min(c.applied, hs.GetCommit())), nil
}

// startEmpty gives a joining node an empty state of its cluster until the
// leader's snapshot replaces it.
func (c *Controller) startEmpty() error {
	m, err := meta.New(&metav1.State{FormatVersion: meta.FormatVersion, ClusterId: c.identity.ClusterID, NextGroupId: 1})
	if err != nil {
		return fmt.Errorf("controller: empty state: %w", err)
	}
	c.machine = m
	return nil
}

// snapshotState is the state bytes a snapshot of the log carries: its
// Data, or for the own meta log the state in raftlog's descriptor.
func (c *Controller) snapshotState(snap *raftpb.Snapshot) ([]byte, error) {
	if d, ok := c.log.(interface {
		SnapshotState(*raftpb.Snapshot) ([]byte, error)
	}); ok {
		return d.SnapshotState(snap)
	}
	return snap.GetData(), nil
}

func (c *Controller) snapshotFile() string { return filepath.Join(c.dir, SnapshotFileName) }

// metaState is a decoded snapshot's state.
type metaState struct{ state *metav1.State }

func (s *metaState) encode(nextOffset int64) ([]byte, error) {
	m, err := meta.New(s.state)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	b, err := m.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return encodeSnapshot(nextOffset, b), nil
}

func decodeMetaState(data []byte) (int64, *metaState, error) {
	next, b, err := decodeSnapshot(data)
	if err != nil {
		return 0, nil, err
	}
	st, err := meta.UnmarshalState(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errBadSnapshot, err)
	}
	return next, &metaState{st}, nil
}

// snapshotLoop writes the meta-snapshot file and compacts the log behind
// it whenever SnapshotEntries more entries were applied. A failure leaves
// the log as it was (the log alone still holds everything) and is kept for
// SnapshotErr; the next due snapshot tries again.
func (c *Controller) snapshotLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.snapshotDue:
		}
		err := c.snapshot()
		if err != nil && !errors.Is(err, ErrClosed) {
			c.e.Logger.Error("controller: meta snapshot", "err", err)
		}
		c.mu.Lock()
		c.snapshotErr = err
		c.mu.Unlock()
	}
}

// snapshot takes the state at the applied index on the group's worker,
// writes it to the file off the worker (atomically: the file holds the old
// or the new state after a crash), then compacts the log to that index,
// so the log never lacks entries the file does not cover. One call at a
// time (snapshotMu). It writes nothing when the machine runs ahead of the
// replica or the last snapshot covers the applied index: a caller that
// needs one at some index checks snapshotIndex after.
func (c *Controller) snapshot() error {
	c.snapshotMu.Lock()
	defer c.snapshotMu.Unlock()
	var (
		data  []byte
		index uint64
		cs    *raftpb.ConfState
		err   error
	)
	doErr := c.cfg.Scheduler.Do(GroupID, func(r *replica.Replica) {
		c.mu.Lock()
		defer c.mu.Unlock()
		// After a start from a meta-snapshot file past the durable commit
		// the machine runs ahead of the replica until raft has handed the
		// skipped entries over again; compacting then would pair the state
		// with another index's configuration, so wait for a later round.
		if index = r.Applied(); index != c.machine.AppliedIndex() || index <= c.snapshotIndex {
			index = 0
			return
		}
		var st []byte
		if st, err = c.machine.Snapshot(); err == nil {
			data, cs = encodeSnapshot(c.appliedNext, st), r.ConfState()
		}
	})
	if err := cmp.Or(doErr, err); err != nil {
		return mapSchedulerErr(err)
	}
	if index == 0 {
		return nil
	}
	if err := vfs.WriteFileAtomic(c.e.FS, c.snapshotFile(), data); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	doErr = c.cfg.Scheduler.Do(GroupID, func(r *replica.Replica) {
		first, ferr := c.log.FirstIndex()
		if err = ferr; err != nil || index < first {
			return // a snapshot from the leader already covers index
		}
		if err = c.log.CreateSnapshot(index, cs, data); storage.IsDamage(err) {
			r.LogDamaged(fmt.Errorf("compact the meta log to %d: %w", index, err))
		}
	})
	if err := cmp.Or(doErr, err); err != nil {
		return fmt.Errorf("controller: compact the meta log to %d: %w", index, mapSchedulerErr(err))
	}
	c.mu.Lock()
	c.snapshotIndex = max(c.snapshotIndex, index)
	c.mu.Unlock()
	return nil
}

// mapSchedulerErr turns the scheduler's refusals after Close into ErrClosed.
func mapSchedulerErr(err error) error {
	if errors.Is(err, replica.ErrUnknownGroup) || errors.Is(err, replica.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
