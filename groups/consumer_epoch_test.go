package groups

import (
	"context"
	"testing"
	"time"

	"github.com/cairnlog/cairn/storage/vfs"
)

// TestConsumerEpochsDoNotRecurAfterRestart: the epochs a KIP-848 group
// handed out are durable before a member hears them, so the group loaded
// again (a restart here; a new coordinator alike) goes on above them. A
// member that rejoins with its own member id then never gets an epoch it
// held before with another assignment, and a late commit of its old epoch
// is refused rather than taken as the new one's.
func TestConsumerEpochsDoNotRecurAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys := vfs.NewMem()
	cl, co := openTest(t, fsys)
	if _, err := cl.CreateTopic("t", 4, nil, false); err != nil {
		t.Fatal(err)
	}
	join := func(co *Coordinator, member string) int32 {
		t.Helper()
		res, err := co.ConsumerHeartbeat(ctx, ConsumerHeartbeatRequest{Group: "g", MemberID: member, MemberEpoch: 0,
			RebalanceTimeoutMs: 60_000, SubscribedTopics: []string{"t"}})
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Fatalf("%s joins: %v", member, err)
		}
		return res.MemberEpoch
	}
	join(co, "m1")
	last := join(co, "m2") // a second member bumps the group epoch again
	if last < 2 {
		t.Fatalf("epoch %d after two joins, want at least 2", last)
	}
	_ = co.Close()
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	cl, co = openTest(t, fsys)
	defer cl.Close()
	defer co.Close()
	if again := join(co, "m2"); again <= last {
		t.Fatalf("m2 rejoined at epoch %d after holding %d before the restart", again, last)
	}
	_, err := co.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: "m2", Generation: last},
		map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 5, LeaderEpoch: -1}})
	if err == nil {
		t.Fatalf("a late commit of m2's epoch %d from before the restart was taken", last)
	}
}
