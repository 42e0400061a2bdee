package cli

import (
	"slices"
	"testing"
)

func TestEndTrackerFinishesWhenEveryPartitionReachesItsStartingEnd(t *testing.T) {
	tracker := NewEndTracker()
	tracker.Track(0, 0, 3)   // offsets 0, 1, 2 to deliver
	tracker.Track(1, 5, 5)   // empty from its start: done at once
	tracker.Track(2, 10, 11) // one record
	if tracker.Done() || !slices.Equal(tracker.Pending(), []int32{0, 2}) {
		t.Fatalf("pending %v", tracker.Pending())
	}
	steps := []struct {
		partition int32
		offset    int64
		accept    bool
	}{
		{0, 0, true},
		{2, 10, true}, // partition 2 done
		{0, 1, true},
		{2, 11, false}, // appended after the start: not in the snapshot
		{0, 2, true},   // partition 0 done
		{0, 3, false},
		{1, 5, false}, // partition 1 was never pending
	}
	for _, step := range steps {
		if got := tracker.Accept(step.partition, step.offset); got != step.accept {
			t.Errorf("Accept(%d, %d) = %v, want %v", step.partition, step.offset, got, step.accept)
		}
	}
	if !tracker.Done() {
		t.Errorf("not done, pending %v", tracker.Pending())
	}
}

func TestEndTrackerCountsAGapAtTheEndAsReached(t *testing.T) {
	// Compaction or a transaction marker can leave the last offsets below the
	// high watermark without a record; reaching past them still ends the run.
	tracker := NewEndTracker()
	tracker.Track(0, 0, 10)
	if !tracker.Accept(0, 4) || tracker.Done() {
		t.Fatal("done too early")
	}
	if tracker.Accept(0, 12) || !tracker.Done() {
		t.Fatal("a record past the end did not finish the partition")
	}
}

func TestEndTrackerWithNothingToTrackIsDone(t *testing.T) {
	if !NewEndTracker().Done() {
		t.Fatal("empty tracker not done")
	}
}
