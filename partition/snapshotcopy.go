package partition

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/raftlog"
)

// ReadSnapshotData serves a follower copying the data below the replica's
// current snapshot at (index, term) before it installs it (design §2.2):
// whole batches from offset, at most maxBytes unless the first is larger,
// and where to continue. The data lies below the snapshot's next offset,
// so it is committed and applied here. raftlog.ErrSnapshotChanged when
// that snapshot is no longer the current one or its data is gone (the
// follower starts again from the snapshot raft sends it next). Safe on
// any goroutine; a replica only.
func (p *Partition) ReadSnapshotData(index, term uint64, offset int64, maxBytes int) (raftlog.SnapshotData, error) {
	if p.raft == nil {
		return raftlog.SnapshotData{}, fmt.Errorf("partition %s-%d: snapshot data: not a replica", p.topic, p.index)
	}
	d, err := p.raft.ReadSnapshotData(index, term, offset, maxBytes)
	if err != nil {
		return raftlog.SnapshotData{}, fmt.Errorf("partition %s-%d: %w", p.topic, p.index, err)
	}
	return d, nil
}

// SnapshotCopyWanted says whether installing snap here needs the data
// below it copied first, and names that copy: its descriptor's log start
// is below its next offset, and the Raft log neither holds the snapshot's
// entry (the install keeps the data it has then) nor has a snapshot at or
// past it (raft ignores such a snapshot). Safe on any goroutine.
func (p *Partition) SnapshotCopyWanted(snap *raftpb.Snapshot) (raftlog.StagedSnapshot, bool) {
	if p.raft == nil || len(snap.GetData()) == 0 {
		return raftlog.StagedSnapshot{}, false
	}
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil || d.LogStartOffset >= d.NextOffset {
		return raftlog.StagedSnapshot{}, false
	}
	index, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if first, err := p.raft.FirstIndex(); err != nil || index < first {
		return raftlog.StagedSnapshot{}, false
	}
	if held, err := p.raft.Term(index); err == nil && held == term {
		return raftlog.StagedSnapshot{}, false
	}
	return raftlog.StagedSnapshot{Index: index, Term: term, LogStartOffset: d.LogStartOffset, NextOffset: d.NextOffset}, true
}

// OpenSnapshotCopy opens the replica's staging directory for the copy of
// the data below a snapshot (raftlog.Log.OpenStaging: a copy of the same
// snapshot resumes, another one starts again; it waits for an install
// under way, which removes the directory). The Raft log's install uses a
// complete copy (Staging.Complete). One copy at a time.
func (p *Partition) OpenSnapshotCopy(s raftlog.StagedSnapshot) (*raftlog.Staging, error) {
	if p.raft == nil {
		return nil, fmt.Errorf("partition %s-%d: snapshot copy: not a replica", p.topic, p.index)
	}
	st, err := p.raft.OpenStaging(s)
	if err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", p.topic, p.index, err)
	}
	return st, nil
}
