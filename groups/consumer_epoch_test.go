package groups

import (
	"context"
	"errors"
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
		res, err := beat(ctx, co, member, 0, "t")
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
	cl, co = reopenTest(t, fsys, cl, co)
	// Loaded, before any member is back: an empty consumer group at the
	// epoch it had.
	if d, err := co.Describe(ctx, "g"); err != nil || d.Consumer == nil || d.Consumer.Epoch != last || d.State != "Empty" {
		t.Fatalf("described after the restart: %+v %v; want an empty consumer group at epoch %d", d, err, last)
	}
	if list, err := co.List(ctx); err != nil || len(list) != 1 || list[0].Type != "consumer" {
		t.Fatalf("listed after the restart: %+v %v; want one consumer group", list, err)
	}
	if again := join(co, "m2"); again <= last {
		t.Fatalf("m2 rejoined at epoch %d after holding %d before the restart", again, last)
	}
	_, err := co.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: "m2", Generation: last},
		map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 5, LeaderEpoch: -1}})
	if err == nil {
		t.Fatalf("a late commit of m2's epoch %d from before the restart was taken", last)
	}
}

// TestConsumerEpochAnsweredOnlyOnceDurable: a heartbeat appended the
// record of a new group epoch, whose sync is held; another member's
// heartbeat, which would carry that epoch, is not answered before the
// record is durable (its caller's deadline passes first, a retriable
// error), and is once the sync completes.
func TestConsumerEpochAnsweredOnlyOnceDurable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, cl, co := openHeldTest(t)
	for _, topic := range []string{"t", "u"} {
		if _, err := cl.CreateTopic(topic, 2, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	first, err := beat(ctx, co, "m1", 0, "t")
	if err != nil {
		t.Fatal(err)
	}
	held.hold.Store(true)
	short := func() context.Context {
		c, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
		t.Cleanup(cancelShort)
		return c
	}
	// m2 takes only u's partitions: m1 keeps its own and moves to the
	// new epoch at its next heartbeat.
	if _, err := beat(short(), co, "m2", 0, "u"); !errors.Is(err, ErrCoordinatorNotAvailable) {
		t.Fatalf("join with the epoch record's sync held: %v, want a retriable error", err)
	}
	if res, err := beat(short(), co, "m1", first.MemberEpoch, "t"); !errors.Is(err, ErrCoordinatorNotAvailable) {
		t.Fatalf("m1's heartbeat before the new epoch is durable: epoch %d, %v; want a retriable error", res.MemberEpoch, err)
	}
	held.releaseSyncs()
	res, err := beat(ctx, co, "m1", first.MemberEpoch, "t")
	if err != nil || res.MemberEpoch <= first.MemberEpoch {
		t.Fatalf("m1's heartbeat once the record is durable: epoch %d, %v; want above %d", res.MemberEpoch, err, first.MemberEpoch)
	}
}

// TestConsumerJoinUnansweredLeavesNoMember: a join heartbeat whose epoch
// record could not be made durable (its sync held past the caller's
// deadline, or its write failed for a full disk) answers a retriable
// error and leaves no member behind to hold partitions until its session
// expires: the member already in the group keeps every partition.
func TestConsumerJoinUnansweredLeavesNoMember(t *testing.T) {
	for _, how := range []string{"sync held", "write failed"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			held, cl, co := openHeldTest(t)
			if _, err := cl.CreateTopic("t", 2, nil, false); err != nil {
				t.Fatal(err)
			}
			first, err := beat(ctx, co, "m1", 0, "t")
			if err != nil {
				t.Fatal(err)
			}
			if how == "sync held" {
				held.hold.Store(true)
			} else {
				held.full.Store(true)
			}
			short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancelShort()
			// A server-made member id (version 0): the caller never hears it.
			if _, err := beat(short, co, "", 0, "t"); !errors.Is(err, ErrCoordinatorNotAvailable) {
				t.Fatalf("join with the epoch record not durable: %v, want a retriable error", err)
			}
			if how == "sync held" {
				held.releaseSyncs()
			} else {
				held.full.Store(false)
			}
			d, err := co.Describe(ctx, "g")
			if err != nil || d.Consumer == nil {
				t.Fatalf("described: %+v %v", d, err)
			}
			if len(d.Consumer.Members) != 1 || d.Consumer.Members[0].MemberID != "m1" {
				t.Fatalf("members after the failed join: %+v, want m1 alone", d.Consumer.Members)
			}
			deadline := time.Now().Add(5 * time.Second)
			for epoch := first.MemberEpoch; ; {
				res, err := beat(ctx, co, "m1", epoch, "t")
				if err == nil && len(res.Assignment["t"]) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("m1 holds %v (%v), want both partitions of t", res.Assignment, err)
				}
				if err == nil {
					epoch = res.MemberEpoch
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestClassicGroupStaysClassicAfterRestart: a classic group of protocol
// type "consumer" (every classic Kafka consumer's) that went empty loads
// again as a classic group, not as a KIP-848 one: only the latter's
// records name a server assignor.
func TestClassicGroupStaysClassicAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys := vfs.NewMem()
	cl, co := openTest(t, fsys)
	res, err := co.Join(ctx, JoinRequest{Group: "c", ClientID: "a", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 60_000,
		ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.Leave(ctx, "c", []LeaveMember{{MemberID: res.MemberID}}); err != nil {
		t.Fatal(err)
	}
	// Committed after the group's record, in the same partition: both durable.
	if _, err := co.CommitOffsets(ctx, CommitRequest{Group: "c", Generation: -1}, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	cl, co = reopenTest(t, fsys, cl, co)
	if list, err := co.List(ctx); err != nil || len(list) != 1 || list[0].Type != "classic" || list[0].ProtocolType != "consumer" {
		t.Fatalf("listed after the restart: %+v %v; want one classic group of protocol type consumer", list, err)
	}
}

// beat sends member's ConsumerGroupHeartbeat to group g, subscribed to
// topic, and folds the answer's error into the call's.
func beat(ctx context.Context, co *Coordinator, member string, epoch int32, topic string) (ConsumerHeartbeatResult, error) {
	res, err := co.ConsumerHeartbeat(ctx, ConsumerHeartbeatRequest{Group: "g", MemberID: member, MemberEpoch: epoch,
		RebalanceTimeoutMs: 60_000, SubscribedTopics: []string{topic}})
	if err == nil {
		err = res.Err
	}
	return res, err
}

// TestConsumerJoinUnansweredSparesALaterJoin: a failed join's member is
// taken out only if no later join admitted it again, even one that got
// the same member id and epoch after the group was loaded again from a
// log without the failed join's epoch record.
func TestConsumerJoinUnansweredSparesALaterJoin(t *testing.T) {
	m := NewMachine(DefaultConfig(), "x")
	topics := map[string]TopicInfo{"t": {Partitions: 2}}
	join := func() ConsumerHeartbeatResult {
		res := m.ConsumerHeartbeat(0, ConsumerHeartbeatRequest{Group: "g", MemberID: "m1", RebalanceTimeoutMs: 60_000,
			SubscribedTopics: []string{"t"}, Topics: topics})
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res
	}
	failed := join()
	m.Unload(func(string) bool { return true })
	m.Adopt(NewMachine(DefaultConfig(), "x"))
	again := join()
	if again.MemberEpoch != failed.MemberEpoch {
		t.Fatalf("rejoined at epoch %d, the failed join had %d: the case this test is about did not arise", again.MemberEpoch, failed.MemberEpoch)
	}
	m.ConsumerJoinUnanswered(0, "g", failed)
	if d := m.Describe("g"); d.Consumer == nil || len(d.Consumer.Members) != 1 {
		t.Fatalf("the failed join took out the member a later join admitted: %+v", d)
	}
	m.ConsumerJoinUnanswered(0, "g", again)
	if d := m.Describe("g"); d.Consumer != nil && len(d.Consumer.Members) != 0 {
		t.Fatalf("the later join's own failure left its member: %+v", d.Consumer.Members)
	}
}
