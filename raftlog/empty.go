package raftlog

import (
	"fmt"

	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// CreateEmpty makes a raft log in dir that starts empty: no entry, no
// vote, no configuration, FirstIndex 1 and LastIndex 0, as
// raft.MemoryStorage starts. It is the log of a replica added to a running
// group (a node joining the metadata group): such a replica is in no
// configuration it could derive alone, so it must not invent a bootstrap
// snapshot, and waits for the leader's snapshot (ApplySnapshot, which then
// needs the snapshot's descriptor) or its entries from index 1.
//
// On disk it is a log whose Snapshot record is at index 0, term 0, offset
// 0, with an empty ConfState, written as Create writes a bootstrap one
// (raft-meta, then raft-state), so a crash leaves no raft-state (Open says
// ErrStateMissing and CreateEmpty may run again) or the whole empty log,
// which Open opens as empty. dir must hold no batches: an empty log over
// data would describe it wrongly.
func CreateEmpty(fsys vfs.FS, dir string, cfg storage.Config, groupID, replicaID uint64, nowMs int64) (*Log, error) {
	st, err := storage.Open(fsys, dir, cfg, nowMs)
	if err != nil {
		return nil, err
	}
	if st.NextOffset() != 0 {
		st.Close()
		return nil, fmt.Errorf("create empty raft log %s: the segments hold data up to offset %d", dir, st.NextOffset())
	}
	// An empty ConfState marshals to no bytes; the zero Bootstrap's
	// snapshot is the empty log's compaction point at index 0.
	l, err := create(fsys, dir, st, Bootstrap{GroupID: groupID, ReplicaID: replicaID}, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	return l, nil
}

// IsEmpty reports whether the log holds nothing: no snapshot (the
// compaction point at index 0), no entry. A log CreateEmpty made stays so
// until the leader's snapshot or first entries arrive.
func (l *Log) IsEmpty() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.book.snapshot.Index == 0 && l.last == 0
}
