package partition

import (
	"fmt"

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
