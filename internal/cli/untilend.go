package cli

import "slices"

// EndTracker decides when `consume --until-end` is done: every partition has
// delivered the records below the high watermark it had when consumption
// began. Records appended later are not part of that snapshot and are
// skipped, so one run prints exactly the log as it stood at the start.
type EndTracker struct {
	ends map[int32]int64 // partition -> high watermark at the start, for partitions not yet done
}

// NewEndTracker returns a tracker with no partitions, which is done.
func NewEndTracker() *EndTracker {
	return &EndTracker{ends: make(map[int32]int64)}
}

// Track adds a partition that consumption starts at firstOffset and whose
// high watermark was highWatermark at the start. A partition with nothing
// between the two is done at once and never tracked.
func (t *EndTracker) Track(partition int32, firstOffset, highWatermark int64) {
	if firstOffset < highWatermark {
		t.ends[partition] = highWatermark
	}
}

// Accept reports whether a consumed record belongs to the snapshot, and marks
// its partition done once a record reaches the snapshot's last offset.
func (t *EndTracker) Accept(partition int32, offset int64) bool {
	end, pending := t.ends[partition]
	if !pending {
		return false
	}
	if offset+1 >= end {
		delete(t.ends, partition)
	}
	return offset < end
}

// Done reports whether every tracked partition has reached its end.
func (t *EndTracker) Done() bool { return len(t.ends) == 0 }

// Pending returns the partitions not yet at their end, in order.
func (t *EndTracker) Pending() []int32 {
	pending := make([]int32, 0, len(t.ends))
	for partition := range t.ends {
		pending = append(pending, partition)
	}
	slices.Sort(pending)
	return pending
}
