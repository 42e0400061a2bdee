package raftlog

import (
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Compact moves the compaction point to index: entries at or below it
// are no longer served (raft.ErrCompacted), and Snapshot describes it. It
// writes and syncs a Snapshot record (the term boundaries at or below
// index, the Kafka offset after it, the log start offset and conf, or the
// previous ConfState when conf is nil) before returning, so the caller
// may then drop the segments below the offset after index; raft-state is
// rewritten too, so that the record is before its recovery point. It never
// passes the applied index: a compacted entry must be applied. Write side
// only. Entries at or below the current point give raft.ErrCompacted, as
// raft.MemoryStorage does; past the last entry, raft.ErrUnavailable. The
// entries counted to find the offset after index are applied, so one
// whose batch disagrees with raft-meta is damage (*storage.CorruptionError).
func (l *Log) Compact(index uint64, conf *raftpb.ConfState) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	var cs []byte
	if conf != nil {
		var err error
		if cs, err = (proto.MarshalOptions{Deterministic: true}).Marshal(conf); err != nil {
			return fmt.Errorf("compact at %d: %w", index, err)
		}
	}
	rec, err := l.compactionRecord(index, cs)
	if err != nil {
		return err
	}
	if err := l.writeMetaRecord(rec); err != nil {
		return err
	}
	l.mu.Lock()
	err = l.book.apply(rec)
	l.cache.compactTo(index)
	l.mu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("compact at %d: %w", index, err))
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.syncMetaLocked(); err != nil {
		return err
	}
	// The caller drops the segments below the new compaction point next:
	// past raft-state's recovery point, the record's damage would be cut as
	// a torn tail, leaving a compaction point below the segments' start.
	if l.persisted.MetaGeneration != l.metaGeneration || l.metaSynced <= l.persisted.MetaRecoveryPoint {
		return nil
	}
	// Only the recovery point moves: term and vote become durable at the
	// next Sync, as they would have.
	return l.writeStateLocked(l.persisted)
}

// compactionRecord builds the Snapshot record for a compaction at index.
func (l *Log) compactionRecord(index uint64, conf []byte) (*Snapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case index <= l.book.snapshot.Index:
		return nil, raft.ErrCompacted
	case index > l.last:
		return nil, fmt.Errorf("compact at %d past the last entry %d: %w", index, l.last, raft.ErrUnavailable)
	case index > l.want.Applied:
		return nil, fmt.Errorf("compact at %d past the applied index %d", index, l.want.Applied)
	}
	next, _, err := offsetOf(l.book, l.headerReader(), index+1)
	if errors.Is(err, errLogMismatch) {
		// The entries counted are applied, so committed: their batches
		// disagreeing with raft-meta is damage, not a tail to cut.
		return nil, corruption(l.dir, "compact at %d: %v", index, err)
	}
	if err != nil {
		return nil, fmt.Errorf("compact at %d: %w", index, err)
	}
	if conf == nil {
		conf = l.book.snapshot.ConfState
	}
	term, _ := l.book.term(index)
	upTo := sort.Search(len(l.book.terms), func(k int) bool { return l.book.terms[k].Index > index })
	if len(conf) > confStateBytesMax || upTo*termStartBytes+len(l.book.snapshot.Legacy)*legacyEpochBytes > recordBytesMax/2 {
		return nil, fmt.Errorf("compact at %d: ConfState of %d bytes, %d term boundaries", index, len(conf), upTo)
	}
	return &Snapshot{Index: index, Term: term, NextOffset: next, LogStartOffset: l.storage.StartOffset(),
		ConfState: conf, Terms: append([]TermStart(nil), l.book.terms[:upTo]...), Legacy: l.book.snapshot.Legacy}, nil
}

// Snapshot describes the compaction point: its index, term and ConfState,
// and as Data its Descriptor (EncodeDescriptor): the log start offset, the
// offset after the snapshot, the term boundaries at or below it, the
// legacy epochs and the state machine's data from the SetSnapshotData
// hook, asked for the snapshot index (never for an empty log's index 0).
func (l *Log) Snapshot() (*raftpb.Snapshot, error) {
	l.mu.RLock()
	s, hook := l.book.snapshot, l.snapshotData
	start := l.storage.StartOffset()
	l.mu.RUnlock()
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(s.ConfState, cs); err != nil {
		return nil, fmt.Errorf("raft log %s: snapshot ConfState: %w", l.dir, err)
	}
	desc := Descriptor{LogStartOffset: min(start, s.NextOffset), NextOffset: s.NextOffset, Terms: s.Terms, LegacyEpochs: s.Legacy}
	// An empty log (CreateEmpty) has no state to carry: nothing applied.
	if hook != nil && s.Index > 0 {
		data, err := hook(s.Index)
		if err != nil {
			return nil, fmt.Errorf("raft log %s: state of the snapshot at %d: %w", l.dir, s.Index, err)
		}
		desc.StateData = data
	}
	// Completed as raft completes the snapshots it handles
	// (raftpb.EnsureSnapshot), as raft.MemoryStorage returns them.
	return raftpb.EnsureSnapshot(&raftpb.Snapshot{Data: EncodeDescriptor(desc), Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(s.Index), Term: proto.Uint64(s.Term), ConfState: raftpb.EnsureConfState(cs)}}), nil
}

// SetSnapshotData sets the hook Snapshot asks for the state machine's
// state as of the snapshot index (producer state, meta state), carried
// opaque in the descriptor's StateData. It may run on any goroutine that
// calls Snapshot; nil (the default) carries none.
func (l *Log) SetSnapshotData(hook func(index uint64) ([]byte, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snapshotData = hook
}

// RequireStagedData makes ApplySnapshot refuse (ErrSnapshotDataMissing) a
// snapshot with data below it that the log neither holds nor has a
// complete staged copy of, where it would otherwise restart the segments
// empty at the snapshot's next offset. A replica whose owner copies that
// data before raft sees the snapshot (a cluster's snapshot fetcher) asks
// for it: an install without the copy would make its log start jump past
// records its group acknowledged, which it would then serve as gone if it
// led.
func (l *Log) RequireStagedData() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stagedOnly = true
}

// SetInstallPrepare sets the hook ApplySnapshot calls once it planned an
// install, before it writes anything: the state machine writes there what
// must be durable before the install is (producer state as of the
// snapshot), so that an install refused (ErrSnapshotDataMissing, a
// snapshot out of date, a descriptor that does not fit the log) leaves
// the state machine as it was. An error from it ends the install, nothing
// written. It runs on the install's goroutine, with no lock of the log's
// held but the one keeping copies out of the staging directory.
func (l *Log) SetInstallPrepare(hook func(snap *raftpb.Snapshot) error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prepareInstall = hook
}

// The Log is raft's storage.
var _ raft.Storage = (*Log)(nil)
