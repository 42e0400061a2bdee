package raftlog

import "sort"

// LastConfChange returns the index of the last configuration change entry
// at or below index and above the compaction point, 0 when there is none:
// the ConfState as of index is then the compaction point's. A caller
// compacting at index passes the ConfState that change made (Compact's
// conf), or nil when there is none.
func (l *Log) LastConfChange(index uint64) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	nd := l.book.nonData
	for k := sort.Search(len(nd), func(k int) bool { return nd[k].Index > index }) - 1; k >= 0; k-- {
		if nd[k].Index <= l.book.snapshot.Index {
			break
		}
		if nd[k].Kind == KindConfChange || nd[k].Kind == KindConfChangeV2 {
			return nd[k].Index
		}
	}
	return 0
}
