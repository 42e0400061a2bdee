package partition

import (
	"errors"
	"fmt"
	"path"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/streams"
)

// asWriter runs f as the writer of the log: at once for a single writer,
// on the replica's goroutine for a replica, where the Raft log's write
// side runs (retention and cleaners compact it before they remove data).
func (p *Partition) asWriter(f func() error) error {
	if p.repl == nil {
		return f()
	}
	return p.repl.propose(func(*replica.Replica) error { return f() })
}

// compactRaftBelow compacts the Raft log so that no entry left in it has
// data below offset, which the caller is about to delete or rewrite: the
// compaction point is the entry before the batch starting at offset, or
// the batch holding it when it starts below. A follower that needs an
// entry below then gets a snapshot. Never past the applied index recorded:
// offset must be at or below the applied data's end. A replica's writer
// only (asWriter, Apply), under mu; nothing for a single writer.
func (p *Partition) compactRaftBelow(offset int64) error {
	if p.raft == nil {
		return nil
	}
	index, err := p.raftIndexBelow(offset)
	if err != nil || index == 0 {
		return err
	}
	return p.compactRaftAt(index)
}

// compactRaftAt compacts the Raft log for a compaction needed at index
// (compactionConf says where and with which ConfState) and forgets the
// ConfStates of the changes it passed. Under mu, on the replica's writer.
func (p *Partition) compactRaftAt(index uint64) error {
	index, conf, err := p.compactionConf(index)
	if err != nil {
		return err
	}
	if err := p.raft.Compact(index, conf); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return p.classifyWriteError(fmt.Errorf("compact the raft log at %d: %w", index, err))
	}
	for c := range p.repl.confAt {
		if c <= index {
			delete(p.repl.confAt, c)
		}
	}
	return nil
}

// snapshotIndex is the Raft log's compaction point; 0 for a single writer.
func (p *Partition) snapshotIndex() (uint64, error) {
	if p.raft == nil {
		return 0, nil
	}
	first, err := p.raft.FirstIndex()
	return first - 1, err
}

// renewSnapshotOver makes sure that no follower copying the data below
// the Raft log's snapshot (ReadSnapshotData, in pieces) reads any piece
// from after the caller rewrites data from offset: when the snapshot is
// still the one recorded before the caller's compaction (before, its
// index) and its data reaches past offset, the log is compacted one
// applied entry further, so a copy under way hears ErrSnapshotChanged at
// its next piece and starts again from the new snapshot, rather than keep
// pieces from before a cleaner pass beside pieces from after it (a key's
// old record without its tombstone, an aborted transaction's records
// without their marker). False when no applied entry lies past the
// snapshot: the caller leaves the data as it is for a later pass. Only a
// follower needing exactly that one entry gets a snapshot instead. A
// replica's writer only, under mu; true at once for a single writer.
func (p *Partition) renewSnapshotOver(offset int64, before uint64) (bool, error) {
	snap, err := p.snapshotIndex()
	if err != nil || snap != before || snap == 0 {
		return err == nil, err // a new snapshot (no copy can be of it yet), or none
	}
	next, err := p.raft.OffsetOf(snap + 1)
	if err != nil {
		return false, fmt.Errorf("offset after the snapshot at %d: %w", snap, err)
	}
	if next <= offset {
		return true, nil // the rewrite lies past the snapshot's data
	}
	applied, _, err := p.appliedEnd()
	if err != nil || applied <= snap {
		return false, err
	}
	if err := p.compactRaftAt(snap + 1); err != nil {
		return false, err
	}
	// compactionConf may go back to the applied index raft-state recorded,
	// which need not pass the snapshot.
	after, err := p.snapshotIndex()
	return err == nil && after != snap, err
}

// compactionConf returns where to compact the Raft log for a compaction
// needed at index, and the ConfState to record there: nil (the
// compaction point's) when no configuration change lies between, the one
// the last change made when it is known. Otherwise (changes applied in one
// Apply, the ConfState between them never seen) the compaction goes to the
// applied index the Raft log recorded, whose ConfState raft-state holds;
// further than asked, which only makes followers behind it need a
// snapshot.
func (p *Partition) compactionConf(index uint64) (uint64, *raftpb.ConfState, error) {
	c := p.raft.LastConfChange(index)
	if c == 0 {
		return index, nil, nil
	}
	if cs, ok := p.repl.confAt[c]; ok {
		return index, cs, nil
	}
	hs, cs, err := p.raft.InitialState()
	if err != nil {
		return 0, nil, err
	}
	return hs.GetCommit(), cs, nil
}

// trimEnd bounds the data retention and the cleaners may remove or
// rewrite: the high watermark, and on a replica the offset after the
// applied index its Raft log recorded, which may lag after a
// configuration change (compactRaftBelow never passes it).
func (p *Partition) trimEnd() (int64, error) {
	hwm := p.HighWatermark()
	if p.raft == nil {
		return hwm, nil
	}
	_, end, err := p.appliedEnd()
	if err != nil {
		return 0, err
	}
	return min(hwm, end), nil
}

// appliedEnd returns the applied index the Raft log recorded and the
// offset after it.
func (p *Partition) appliedEnd() (uint64, int64, error) {
	applied, err := p.RaftApplied()
	if err != nil {
		return 0, 0, err
	}
	end, err := p.raft.OffsetOf(applied + 1)
	if err != nil {
		return 0, 0, fmt.Errorf("offset after the applied index %d: %w", applied, err)
	}
	return applied, end, nil
}

// raftIndexBelow returns the compaction point for compactRaftBelow, 0 when
// the log is compacted past it already.
func (p *Partition) raftIndexBelow(offset int64) (uint64, error) {
	applied, appliedEnd, err := p.appliedEnd()
	if err != nil {
		return 0, err
	}
	switch {
	case offset > appliedEnd:
		return 0, fmt.Errorf("remove data below %d past the applied offset %d", offset, appliedEnd)
	case offset == appliedEnd:
		return applied, nil
	}
	index, err := p.raft.IndexAtOffset(offset)
	if errors.Is(err, raft.ErrCompacted) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("entry at offset %d: %w", offset, err)
	}
	base, err := p.raft.OffsetOf(index)
	if err != nil {
		return 0, fmt.Errorf("offset of entry %d: %w", index, err)
	}
	if base == offset {
		index--
	}
	return index, nil
}

// snapshotState is the Raft log's SetSnapshotData hook: producer state as
// applied, encoded with the offset it covers, which is at or past the
// snapshot's next offset. A replica installing the snapshot takes it and
// passes over the batches below that offset as raft delivers them.
func (p *Partition) snapshotState(uint64) ([]byte, error) {
	p.mu.Lock()
	snap := p.copyProducers()
	p.mu.Unlock()
	return snap.state.marshal(snap.nextOffset)
}

// snapshotInstaller writes the producer state a leader's snapshot carries
// before the Raft log installs the snapshot: the install moves raft-state's
// applied index past entries this replica never applied (and may restart
// the segments past them), so a crash between the install and Restore
// must find their producer state already on disk.
type snapshotInstaller struct {
	replica.Storage
	p *Partition
}

// Entries implements raft's Storage. Entries whose stored bytes are
// damaged (a bad batch below the recovery point, found when a leader
// reads them to catch up a replica) take the partition offline and tell
// its owner, as a damaged read does, and raft is told they are compacted:
// it sends that replica a snapshot instead. Raft panics on any other
// storage error, which would take every group of the node down, and on
// this one too where it reads committed entries to apply them (a replica
// restarted behind its commit index), which the replica catches and
// stops on (replica.ErrLogLost).
func (s *snapshotInstaller) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	ents, err := s.Storage.Entries(lo, hi, maxSize)
	if err != nil && StoredBytesInvalid(err) {
		s.p.storedDamage(fmt.Errorf("raft entries [%d, %d): %w", lo, hi, err))
		return nil, raft.ErrCompacted
	}
	return ents, err
}

// ApplySnapshot installs the snapshot; the Raft log calls prepareInstall
// first, once the install is planned. A snapshot refused for want of its
// data (ReplicaConfig.CopiesSnapshots) stops the replica with nothing
// written: its owner recreates it (snapshotRefused).
func (s *snapshotInstaller) ApplySnapshot(snap *raftpb.Snapshot) error {
	err := s.Storage.ApplySnapshot(snap)
	if errors.Is(err, raftlog.ErrSnapshotDataMissing) {
		s.p.snapshotRefused(err)
	}
	return err
}

// prepareInstall writes the snapshot's producer state and drops a stream
// index the snapshot passes, before the Raft log installs it
// (raftlog.Log.SetInstallPrepare): only an install that goes ahead does
// so, since a live partition with its stream index dropped would take
// appends unchecked.
func (p *Partition) prepareInstall(snap *raftpb.Snapshot) error {
	state, next, err := p.snapshotProducers(snap)
	if err != nil {
		return err
	}
	if err := p.dropStreamIndexBelow(snap); err != nil {
		return err
	}
	if state != nil {
		if err := p.writeProducers(producerSnapshotCopy{state: state, nextOffset: next}); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.installs++
	p.mu.Unlock()
	return nil
}

// snapshotRefused handles an install the Raft log refused for want of the
// data below the snapshot: Raft holds the snapshot as installed, so this
// raft node cannot go on, but the log is as it was, so a new one can, from
// it (RestartPoint); its leader then sends the snapshot again, and the
// owner copies its data first. The owner is asked to recreate the replica
// (ReplicaConfig.Restart), or, without that, told the partition is
// damaged.
func (p *Partition) snapshotRefused(err error) {
	if p.repl.restart == nil {
		p.storedDamage(err)
		return
	}
	p.logger.Warn("refused a snapshot whose data was not copied here; the replica restarts from its log", "err", err)
	p.repl.restart()
}

// snapshotProducers decodes the producer state a snapshot carries and the
// offset it covers; nil when it carries none.
func (p *Partition) snapshotProducers(snap *raftpb.Snapshot) (*producerState, int64, error) {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		return nil, 0, fmt.Errorf("partition %s-%d: snapshot at index %d: %w", p.topic, p.index, snap.GetMetadata().GetIndex(), err)
	}
	if len(d.StateData) == 0 {
		return nil, 0, nil
	}
	state, next, err := unmarshalProducerState(d.StateData, p.clock.Now().UnixMilli())
	if err != nil {
		return nil, 0, fmt.Errorf("partition %s-%d: snapshot producer state: %w", p.topic, p.index, err)
	}
	return state, next, nil
}

// dropStreamIndexBelow deletes the stream index before the Raft log
// installs a snapshot past what the index covers (a running build
// included): the install replaces the segments below the snapshot with
// the leader's, which its cleaner may have rewritten, so the index is
// built again from the installed log (Restore), numbering every event
// as the leader's index does (the stream cleaner leaves markers carrying
// the revisions it removes). Deleted first, a crash anywhere leaves no
// index, and the next open builds it from whichever log it finds.
func (p *Partition) dropStreamIndexBelow(snap *raftpb.Snapshot) error {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		return fmt.Errorf("partition %s-%d: snapshot at index %d: %w", p.topic, p.index, snap.GetMetadata().GetIndex(), err)
	}
	p.mu.Lock()
	x, building := p.streamIdx, p.build != nil
	p.mu.Unlock()
	if (x == nil || x.Next() >= d.NextOffset) && !building {
		return nil
	}
	p.stopIndexBuild() // its files cover part of the log being replaced
	p.mu.Lock()
	defer p.mu.Unlock()
	// A build may have published its index before it heard the stop.
	if x = p.streamIdx; x != nil && x.Next() >= d.NextOffset {
		return nil
	}
	p.streamIdx, p.streamTxns = nil, nil
	p.streamsHeld.Store(0)
	if x != nil {
		err = x.Delete()
	} else {
		err = p.fsys.RemoveAll(path.Join(p.dir, streamIndexDir))
	}
	if err == nil {
		err = p.fsys.SyncDir(p.dir)
	}
	if err != nil {
		return p.classifyWriteError(fmt.Errorf("drop the stream index of %s-%d before a snapshot at offset %d: %w", p.topic, p.index, d.NextOffset, err))
	}
	p.logger.Info("dropped the stream index for a snapshot past it", "covered", coveredOf(x), "next_offset", d.NextOffset)
	return nil
}

// coveredOf is the offset an index covers, -1 for none.
func coveredOf(x *streams.Index) int64 {
	if x == nil {
		return -1
	}
	return x.Next()
}

// Restore implements replica.StateMachine: the replica installed a leader's
// snapshot in the Raft log, which holds the data below it when it held the
// snapshot's entry, and otherwise restarted the segments at the
// snapshot's next offset, with the data below it from the descriptor's
// log start when a complete copy of it was staged (raftlog's install),
// empty otherwise (a replica behind retention serves from there; a
// cluster node's fetcher stages the copy). Either way the log start is the segments'. Producer state comes from the
// snapshot's state data, which snapshotInstaller wrote before the install;
// a stream index the snapshot passed was dropped then, and is built
// again from the installed log (at once for a short log, in the
// background otherwise, as when a topic enters the stream policy).
func (p *Partition) Restore(snap *raftpb.Snapshot) error {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		return fmt.Errorf("partition %s-%d: snapshot at index %d: %w", p.topic, p.index, snap.GetMetadata().GetIndex(), err)
	}
	state, next, err := p.snapshotProducers(snap)
	if err != nil {
		return err
	}
	if state == nil {
		state, next = newProducerState(), d.NextOffset
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if x := p.streamIdx; (x != nil && x.Next() < d.NextOffset) || p.build != nil {
		// dropStreamIndexBelow ran before the install: a bug if not.
		return fmt.Errorf("partition %s-%d: a stream index covering %d, or its build, past a snapshot at offset %d",
			p.topic, p.index, coveredOf(p.streamIdx), d.NextOffset)
	}
	p.producers, p.producersNext = state, max(next, d.NextOffset)
	p.publishTxns(nil)
	// raft-state records the snapshot's ConfState, that of its compaction point.
	p.repl.confChanged = false
	clear(p.repl.confAt)
	p.epochMu.Lock()
	p.epochs = &epochHistory{}
	p.epochMu.Unlock()
	p.noteApplied(snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
	p.advance(d.NextOffset)
	p.logger.Info("installed a snapshot", "index", snap.GetMetadata().GetIndex(), "next_offset", d.NextOffset, "log_start_offset", p.log.StartOffset())
	if p.cfg.Streams && p.streamIdx == nil {
		if err := p.setStreams(true); err != nil {
			return fmt.Errorf("partition %s-%d: stream index after a snapshot: %w", p.topic, p.index, err)
		}
	}
	return nil
}

// CompactRaftAtApplied compacts a replica's Raft log at the applied index,
// with the configuration as applied there, keeping every segment: only
// the Raft entries up to there are no longer served. A leader does this
// for a replica added while its log was compacted: raft ignores a snapshot
// whose configuration does not name its receiver, so the replica can only
// catch up from a snapshot taken after its addition. A configuration change
// applied last, whose ConfState the Raft log records only with the next
// Apply (recordApplied), is recorded first, so the point passes it even on
// an idle partition.
func (p *Partition) CompactRaftAtApplied() error {
	if p.repl == nil {
		return fmt.Errorf("partition %s-%d: not a replica", p.topic, p.index)
	}
	return p.asWriter(func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := p.Err(); err != nil {
			return err
		}
		if cs := p.confToRecord(); cs != nil {
			if err := p.raft.RecordApplied(p.repl.confIndex, cs); err != nil {
				return p.classifyWriteError(fmt.Errorf("record the configuration change at %d: %w", p.repl.confIndex, err))
			}
		}
		_, end, err := p.appliedEnd()
		if err != nil {
			return err
		}
		return p.compactRaftBelow(end)
	})
}
