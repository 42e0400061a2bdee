package raftlog

import (
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
// may then drop the segments below the offset after index. It never
// passes the applied index: a compacted entry must be applied. Write side
// only. Entries at or below the current point give raft.ErrCompacted, as
// raft.MemoryStorage does; past the last entry, raft.ErrUnavailable.
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
	l.mu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("compact at %d: %w", index, err))
	}
	return l.syncMeta()
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
	if err != nil {
		return nil, fmt.Errorf("compact at %d: %w", index, err)
	}
	if conf == nil {
		conf = l.book.snapshot.ConfState
	}
	term, _ := l.book.term(index)
	upTo := sort.Search(len(l.book.terms), func(k int) bool { return l.book.terms[k].Index > index })
	if len(conf) > confStateBytesMax || upTo*termStartBytes > recordBytesMax/2 {
		return nil, fmt.Errorf("compact at %d: ConfState of %d bytes, %d term boundaries", index, len(conf), upTo)
	}
	return &Snapshot{Index: index, Term: term, NextOffset: next, LogStartOffset: l.storage.StartOffset(),
		ConfState: conf, Terms: append([]TermStart(nil), l.book.terms[:upTo]...)}, nil
}

// Snapshot describes the compaction point: its index, term and ConfState.
// It carries no data yet: the descriptor of design §2.2 (log start, next
// offset, term history, producer state) comes with snapshot installation.
func (l *Log) Snapshot() (*raftpb.Snapshot, error) {
	l.mu.RLock()
	s := l.book.snapshot
	l.mu.RUnlock()
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(s.ConfState, cs); err != nil {
		return nil, fmt.Errorf("raft log %s: snapshot ConfState: %w", l.dir, err)
	}
	// Completed as raft completes the snapshots it handles
	// (raftpb.EnsureSnapshot), as raft.MemoryStorage returns them.
	return raftpb.EnsureSnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(s.Index), Term: proto.Uint64(s.Term), ConfState: raftpb.EnsureConfState(cs)}}), nil
}

// The Log is raft's storage.
var _ raft.Storage = (*Log)(nil)
