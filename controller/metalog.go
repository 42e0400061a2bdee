package controller

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// Names under <data>/meta/ of the durable meta log: raftlog's directory,
// and the state kept for each compaction index.
const (
	metaLogDirName = "log"
	statePrefix    = "state-"
)

// metaLog is the meta group's durable log: raftlog over <data>/meta/log,
// with the state (snapshot bytes) at its compaction index in
// <data>/meta/state-<index>, which raftlog's snapshot hook reads. The
// state of an index is written before the log compacts to it and the
// older ones removed only after, so the hook can always answer for the
// log's snapshot (the leader's raft cannot do without it). A snapshot the
// leader sent is kept the same way: its state first, then the install.
type metaLog struct {
	*raftlog.RaftStorage
	log *raftlog.Log
	e   env.Env
	dir string // <data>/meta

	// closeMu orders Close after a Sync under way on a sync worker.
	closeMu sync.RWMutex
	closed  bool

	// cut is the lowest index an Append overwrote (a conflicting suffix a
	// new leader replaced), 0 when none did: entries from there on were
	// never committed, so never applied (Controller.StartIndex).
	cut atomic.Uint64
}

var errMetaLogMissing = errors.New("controller: no meta log")

// openMetaLog opens the meta log under metaDir; errMetaLogMissing when
// none was created.
func openMetaLog(e env.Env, metaDir string, segmentBytes int64) (*metaLog, error) {
	l, err := raftlog.Open(e.FS, filepath.Join(metaDir, metaLogDirName), metaStorageConfig(segmentBytes), e.Clock.Now().UnixMilli())
	if errors.Is(err, raftlog.ErrStateMissing) {
		return nil, fmt.Errorf("%w in %s: %w", errMetaLogMissing, metaDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("controller: open the meta log: %w", err)
	}
	// Open reads only what follows the recovery point. A batch damaged
	// before it would be found by the first read that passes it, say a
	// compaction the leader needs to add a learner, and stop this node's
	// metadata replica then, with a joining node waiting on it; the log
	// is small (what follows the last compaction, in segments of
	// segmentBytes), so it is read whole now, batches and entries, and the
	// node refuses to start.
	if err := l.Verify(); err != nil {
		l.Close()
		return nil, fmt.Errorf("controller: open the meta log: %w", err)
	}
	return newMetaLog(e, metaDir, l), nil
}

// createMetaLog writes the bootstrap state, then creates the log at the
// bootstrap snapshot (raftlog.Create leaves all or nothing).
func createMetaLog(e env.Env, metaDir string, segmentBytes int64, replicaID uint64, cs *raftpb.ConfState, data []byte) (*metaLog, error) {
	if err := vfs.WriteFileAtomic(e.FS, stateFile(metaDir, bootstrapIndex), data); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	boot := raftlog.Bootstrap{GroupID: GroupID, ReplicaID: replicaID, Index: bootstrapIndex, Term: 1, ConfState: cs}
	l, err := raftlog.Create(e.FS, filepath.Join(metaDir, metaLogDirName), metaStorageConfig(segmentBytes), boot, e.Clock.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("controller: create the meta log: %w", err)
	}
	return newMetaLog(e, metaDir, l), nil
}

// createEmptyMetaLog creates a meta log that starts empty, for a node
// joining a running cluster under replicaID: no state, no vote, waiting
// for the leader's snapshot (raftlog.CreateEmpty leaves all or nothing).
func createEmptyMetaLog(e env.Env, metaDir string, segmentBytes int64, replicaID uint64) (*metaLog, error) {
	l, err := raftlog.CreateEmpty(e.FS, filepath.Join(metaDir, metaLogDirName), metaStorageConfig(segmentBytes), GroupID, replicaID, e.Clock.Now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("controller: create an empty meta log: %w", err)
	}
	return newMetaLog(e, metaDir, l), nil
}

// isEmpty reports whether the log still holds nothing (created empty, no
// snapshot or entry from a leader yet).
func (m *metaLog) isEmpty() bool { return m.log.IsEmpty() }

func newMetaLog(e env.Env, metaDir string, l *raftlog.Log) *metaLog {
	m := &metaLog{log: l, e: e, dir: metaDir}
	m.RaftStorage = l.Storage(func() int64 { return e.Clock.Now().UnixMilli() })
	l.SetSnapshotData(func(index uint64) ([]byte, error) { return vfs.ReadFile(e.FS, stateFile(metaDir, index)) })
	return m
}

func metaStorageConfig(segmentBytes int64) storage.Config {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = segmentBytes
	return cfg
}

func stateFile(metaDir string, index uint64) string {
	return filepath.Join(metaDir, statePrefix+strconv.FormatUint(index, 10))
}

// CreateSnapshot keeps data as the state at index, records index applied
// with cs, compacts the log there and checkpoints, then removes the
// segments wholly below the compaction point and the states of older
// indexes. On the group's worker.
func (m *metaLog) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	return m.open(func() error { return m.createSnapshot(index, cs, data) })
}

func (m *metaLog) createSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	if err := vfs.WriteFileAtomic(m.e.FS, stateFile(m.dir, index), data); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := m.log.RecordApplied(index, cs); err != nil {
		return err
	}
	if err := m.log.Compact(index, cs); err != nil {
		return err
	}
	if err := m.log.Checkpoint(); err != nil {
		return err
	}
	if err := m.removeSegmentsBelow(index); err != nil {
		return err
	}
	return m.removeStatesBelow(index)
}

// removeSegmentsBelow deletes the oldest segments while they lie wholly
// below the entry after index, the compaction point the log's synced
// Snapshot record names: raftlog never reads below it again, and a
// follower that needs what they held gets the state instead. The active
// segment is never deleted.
func (m *metaLog) removeSegmentsBelow(index uint64) error {
	keep, err := m.log.OffsetOf(index + 1)
	if err != nil {
		return fmt.Errorf("controller: reclaim the meta log below %d: %w", index, err)
	}
	st := m.log.Segments()
	for range len(st.Segments()) {
		segs := st.Segments()
		if len(segs) < 2 || segs[0].NextOffset > keep {
			return nil
		}
		if err := st.DeleteOldestSegment(m.e.Clock.Now().UnixMilli()); err != nil {
			return fmt.Errorf("controller: reclaim the meta log below offset %d: %w", keep, err)
		}
	}
	return nil
}

// removeStatesBelow removes the kept states of indexes below index.
func (m *metaLog) removeStatesBelow(index uint64) error {
	names, err := m.e.FS.List(m.dir)
	if err != nil {
		return fmt.Errorf("controller: list %s: %w", m.dir, err)
	}
	for _, name := range names {
		i, err := strconv.ParseUint(strings.TrimPrefix(name, statePrefix), 10, 64)
		if !strings.HasPrefix(name, statePrefix) || err != nil || i >= index {
			continue
		}
		if err := m.e.FS.Remove(filepath.Join(m.dir, name)); err != nil {
			return fmt.Errorf("controller: remove %s: %w", name, err)
		}
	}
	return m.e.FS.SyncDir(m.dir)
}

// SnapshotState is the state bytes a snapshot of this log carries.
func (m *metaLog) SnapshotState(snap *raftpb.Snapshot) ([]byte, error) {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		return nil, fmt.Errorf("controller: snapshot descriptor: %w", err)
	}
	return d.StateData, nil
}

// The write side and Sync fail after Close: a worker's turn or a sync
// under way when the group was removed may still reach the log.

// Sync implements replica.Storage.
func (m *metaLog) Sync() error {
	return m.open(m.log.Sync)
}

// Append implements replica.Storage.
func (m *metaLog) Append(ents []*raftpb.Entry) error {
	return m.open(func() error {
		if len(ents) > 0 {
			first := ents[0].GetIndex()
			if last, err := m.RaftStorage.LastIndex(); err == nil && first <= last {
				for cut := m.cut.Load(); cut == 0 || first < cut; cut = m.cut.Load() {
					if m.cut.CompareAndSwap(cut, first) {
						break
					}
				}
			}
		}
		return m.RaftStorage.Append(ents)
	})
}

// overwrittenFrom is the lowest index an Append overwrote, 0 when none.
func (m *metaLog) overwrittenFrom() uint64 { return m.cut.Load() }

// SetHardState implements replica.Storage.
func (m *metaLog) SetHardState(hs *raftpb.HardState) error {
	return m.open(func() error { return m.log.SetHardState(hs) })
}

// ApplySnapshot implements replica.Storage: it keeps the snapshot's state
// as the state at its index before installing it, since the log's
// snapshot hook reads it from there (at the next start, and when this
// node leads and sends its snapshot on), then removes the older states.
func (m *metaLog) ApplySnapshot(snap *raftpb.Snapshot) error {
	return m.open(func() error { return m.applySnapshot(snap) })
}

func (m *metaLog) applySnapshot(snap *raftpb.Snapshot) error {
	state, err := m.SnapshotState(snap)
	if err != nil {
		return err
	}
	index := snap.GetMetadata().GetIndex()
	if err := vfs.WriteFileAtomic(m.e.FS, stateFile(m.dir, index), state); err != nil {
		return fmt.Errorf("controller: keep the state of the snapshot at %d: %w", index, err)
	}
	if err := m.RaftStorage.ApplySnapshot(snap); err != nil {
		return err
	}
	return m.removeStatesBelow(index)
}

func (m *metaLog) open(f func() error) error {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return f()
}

// Close checkpoints (so the next open reads little) and closes the log,
// once no write or Sync runs.
func (m *metaLog) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := m.log.Checkpoint()
	if cerr := m.log.Close(); err == nil {
		err = cerr
	}
	return err
}
