package groups

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// fakeLeaders is the cluster's own leader view, except that the test moves
// the leadership of offsets partitions to another node and back. Each move
// starts a new leader epoch, as a Raft election would.
type fakeLeaders struct {
	base *cluster.Cluster
	done chan struct{}

	mu      sync.Mutex
	away    map[int32]int32 // offsets partition → the node leading it instead
	epochs  map[int32]int32 // moves so far, added to the base epoch
	changed chan struct{}
}

const otherNode, otherAddr = 7, "other.example:9093"

func newFakeLeaders(t *testing.T, base *cluster.Cluster) *fakeLeaders {
	f := &fakeLeaders{base: base, done: make(chan struct{}), away: map[int32]int32{}, epochs: map[int32]int32{},
		changed: make(chan struct{})}
	forwarded := make(chan struct{})
	go f.forward(forwarded)
	t.Cleanup(func() {
		close(f.done)
		<-forwarded
	})
	return f
}

// forward passes the base's changes (a topic created) on.
func (f *fakeLeaders) forward(forwarded chan struct{}) {
	defer close(forwarded)
	for {
		select {
		case <-f.base.LeadersChanged():
			f.mu.Lock()
			f.signalLocked()
			f.mu.Unlock()
		case <-f.done:
			return
		}
	}
}

func (f *fakeLeaders) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeLeaders) Leader(topic string, index int32) (cluster.Leader, error) {
	l, err := f.base.Leader(topic, index)
	if err != nil || topic != OffsetsTopic {
		return l, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l.Epoch += f.epochs[index]
	if node, ok := f.away[index]; ok {
		l.Node, l.Local = node, false
	}
	return l, nil
}

// LeadersChanged fires at the base's changes and at the test's moves.
func (f *fakeLeaders) LeadersChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeLeaders) Brokers() []cluster.Broker {
	return append(f.base.Brokers(), cluster.Broker{NodeID: otherNode, KafkaAddr: otherAddr})
}

// move hands partition index to another node (away) or back to this one.
func (f *fakeLeaders) move(index int32, away bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epochs[index]++
	if away {
		f.away[index] = otherNode
	} else {
		delete(f.away, index)
	}
	f.signalLocked()
}

// bump starts a new leader epoch of partition index with the same leader.
func (f *fakeLeaders) bump(index int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epochs[index]++
	f.signalLocked()
}

// heldReadFS holds every read of files whose path contains prefix while
// hold is set, until release is closed: a partition's replay stays in
// progress as long as the test wants.
type heldReadFS struct {
	vfs.FS
	prefix  string
	hold    atomic.Bool
	release chan struct{}
}

type heldReadFile struct {
	vfs.File
	fs   *heldReadFS
	name string
}

func (h *heldReadFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &heldReadFile{File: f, fs: h, name: name}, nil
}

func (h *heldReadFS) Create(name string) (vfs.File, error) {
	f, err := h.FS.Create(name)
	return h.wrap(name, f, err)
}

func (h *heldReadFS) OpenAppend(name string) (vfs.File, error) {
	f, err := h.FS.OpenAppend(name)
	return h.wrap(name, f, err)
}

func (h *heldReadFS) Open(name string) (vfs.File, error) {
	f, err := h.FS.Open(name)
	return h.wrap(name, f, err)
}

func (f *heldReadFile) ReadAt(p []byte, off int64) (int, error) {
	if f.fs.hold.Load() && strings.Contains(f.name, f.fs.prefix) {
		<-f.fs.release
	}
	return f.File.ReadAt(p, off)
}

// openWithLeaders opens a cluster on fsys and a coordinator following a
// fakeLeaders over it, with three offsets partitions.
func openWithLeaders(t *testing.T, fsys vfs.FS) (*cluster.Cluster, *Coordinator, *fakeLeaders) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := env.Real()
	e.FS, e.Logger = fsys, logger
	cl, err := cluster.Open(e, cluster.DefaultConfig("/data"))
	if err != nil {
		t.Fatal(err)
	}
	fake := newFakeLeaders(t, cl)
	cfg := DefaultConfig()
	cfg.InitialRebalanceDelayMs = 0
	cfg.OffsetsTopicPartitions = 3
	cfg.Leaders = fake
	co, err := Open(cl, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	return cl, co, fake
}

// groupElsewhere returns a group whose offsets partition is not index's.
func groupElsewhere(index, partitions int32) string {
	for i := 0; ; i++ {
		if name := fmt.Sprintf("other-%d", i); partitionFor(name, partitions) != index {
			return name
		}
	}
}

// requireNotCoordinator fails unless err (or a result's error) says
// NOT_COORDINATOR.
func requireNotCoordinator(t *testing.T, what string, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if errors.Is(err, ErrNotCoordinator) {
			return
		}
	}
	t.Fatalf("%s on a partition led elsewhere: %v, want ErrNotCoordinator", what, errs)
}

// TestLeadershipMovesUnloadAndReload: when another node takes the lead of
// a group's offsets partition, the group's waiting JoinGroup is answered
// NOT_COORDINATOR, every group request after it too, and the group is no
// longer listed, while groups of other partitions carry on. When the
// leadership comes back, requests get COORDINATOR_LOAD_IN_PROGRESS while
// the partition is replayed, and then the offsets committed before the
// move are fetched again, with those the other leader appended meanwhile.
func TestLeadershipMovesUnloadAndReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const group = "g"
	index := partitionFor(group, 3)
	other := groupElsewhere(index, 3)
	held := &heldReadFS{FS: vfs.NewMem(), prefix: fmt.Sprintf("%s-%d/", OffsetsTopic, index), release: make(chan struct{})}
	cl, co, fake := openWithLeaders(t, held)
	defer cl.Close()
	defer co.Close()
	var released sync.Once
	release := func() { released.Do(func() { close(held.release) }) }
	defer release() // before Close, which waits for the replay
	simple := CommitRequest{Group: group, Generation: -1}
	if _, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 5, LeaderEpoch: -1, Metadata: "before"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.CommitOffsets(ctx, CommitRequest{Group: other, Generation: -1}, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 1, LeaderEpoch: -1}}); err != nil {
		t.Fatal(err)
	}
	join := JoinRequest{Group: group, ClientID: "a", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 60_000,
		ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}}
	first, err := co.Join(ctx, join)
	if err != nil || first.Err != nil {
		t.Fatalf("first join: %+v %v", first, err)
	}
	// A second member's join waits for the first to rejoin.
	type joinAnswer struct {
		res JoinResult
		err error
	}
	waiting := make(chan joinAnswer, 1)
	join.ClientID = "b"
	go func() {
		res, err := co.Join(ctx, join)
		waiting <- joinAnswer{res, err}
	}()
	for d, _ := co.Describe(ctx, group); d.State != "PreparingRebalance"; d, _ = co.Describe(ctx, group) {
		if ctx.Err() != nil {
			t.Fatal("the second join never reached the group")
		}
	}

	fake.move(index, true)
	a := <-waiting
	requireNotCoordinator(t, "the waiting JoinGroup", a.err, a.res.Err)
	requireGroupRefused(ctx, t, co, group, first.MemberID)
	if list, err := co.List(ctx); err != nil || len(list) != 1 || list[0].Group != other {
		t.Fatalf("groups listed with %s-%d led elsewhere: %+v %v, want only %s", OffsetsTopic, index, list, err, other)
	}
	if got, err := co.FetchOffsets(ctx, other, nil); err != nil || got[TopicPartition{"t", 0}].Offset != 1 {
		t.Fatalf("a group of another partition: %v %v", got, err)
	}
	if b, err := co.Locate(group); err != nil || b.NodeID != otherNode || b.KafkaAddr != otherAddr {
		t.Fatalf("Locate(%s) = %+v %v, want node %d at %s", group, b, err, otherNode, otherAddr)
	}

	// The other leader commits, as its coordinator would.
	p, err := cl.Partition(OffsetsTopic, index)
	if err != nil {
		t.Fatal(err)
	}
	records := []batch.Record{
		{Offset: 0, Key: offsetKey(group, TopicPartition{"t", 0}), Value: offsetValue(OffsetCommit{Offset: 8, LeaderEpoch: 4, Metadata: "elsewhere", CommitTimestampMs: 1})},
		{Offset: 1, Key: offsetKey(group, TopicPartition{"t", 1}), Value: offsetValue(OffsetCommit{Offset: 3, LeaderEpoch: -1, CommitTimestampMs: 1})},
	}
	res, err := p.Append(batch.Build(records, batch.None))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatal(err)
	}

	held.hold.Store(true)
	fake.move(index, false)
	if _, err := co.FetchOffsets(ctx, group, nil); !errors.Is(err, ErrCoordinatorLoadInProgress) {
		t.Fatalf("fetch while the partition is replayed: %v, want ErrCoordinatorLoadInProgress", err)
	}
	if b, err := co.Locate(group); err != nil || b.NodeID != cl.NodeID() {
		t.Fatalf("Locate(%s) back home = %+v %v, want node %d", group, b, err, cl.NodeID())
	}
	held.hold.Store(false)
	release()
	got, err := fetchLoaded(ctx, co, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[TopicPartition{"t", 0}].Metadata != "elsewhere" || got[TopicPartition{"t", 0}].Offset != 8 ||
		got[TopicPartition{"t", 1}].Offset != 3 {
		t.Fatalf("offsets after the reload: %+v, want t-0 at 8 and t-1 at 3", got)
	}
	d, err := co.Describe(ctx, group)
	if err != nil || d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("group after the reload: %+v %v, want Empty: members are not kept across a move", d, err)
	}
	if _, err := co.CommitOffsets(ctx, simple, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 9, LeaderEpoch: -1}}); err != nil {
		t.Fatalf("commit after the reload: %v", err)
	}
}

// requireGroupRefused checks that every group API refuses group with
// NOT_COORDINATOR.
func requireGroupRefused(ctx context.Context, t *testing.T, co *Coordinator, group, memberID string) {
	t.Helper()
	j, err := co.Join(ctx, JoinRequest{Group: group, MemberID: memberID, ClientID: "a", SessionTimeoutMs: 10_000,
		RebalanceTimeoutMs: 60_000, ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}})
	requireNotCoordinator(t, "JoinGroup", err, j.Err)
	s, err := co.Sync(ctx, SyncRequest{Group: group, MemberID: memberID, Generation: 1})
	requireNotCoordinator(t, "SyncGroup", err, s.Err)
	requireNotCoordinator(t, "Heartbeat", co.Heartbeat(ctx, HeartbeatRequest{Group: group, MemberID: memberID, Generation: 1}))
	_, err = co.Leave(ctx, group, []LeaveMember{{MemberID: memberID}})
	requireNotCoordinator(t, "LeaveGroup", err)
	_, err = co.CommitOffsets(ctx, CommitRequest{Group: group, Generation: -1}, map[TopicPartition]OffsetCommit{{"t", 0}: {Offset: 6}})
	requireNotCoordinator(t, "OffsetCommit", err)
	_, err = co.FetchOffsets(ctx, group, nil)
	requireNotCoordinator(t, "OffsetFetch", err)
	_, err = co.Describe(ctx, group)
	requireNotCoordinator(t, "DescribeGroups", err)
	requireNotCoordinator(t, "DeleteGroups", co.DeleteGroup(ctx, group))
	_, err = co.DeleteOffsets(ctx, group, []TopicPartition{{"t", 0}})
	requireNotCoordinator(t, "OffsetDelete", err)
	h, err := co.ConsumerHeartbeat(ctx, ConsumerHeartbeatRequest{Group: group, MemberID: "m", SubscribedTopics: []string{"t"}})
	requireNotCoordinator(t, "ConsumerGroupHeartbeat", err, h.Err)
}

// fetchLoaded fetches group's offsets once its partition is loaded.
func fetchLoaded(ctx context.Context, co *Coordinator, group string) (map[TopicPartition]OffsetCommit, error) {
	for {
		got, err := co.FetchOffsets(ctx, group, nil)
		if !errors.Is(err, ErrCoordinatorLoadInProgress) {
			return got, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the partition never finished loading: %w", err)
		}
	}
}

// TestDeposedPartitionWaitsForTheViewToMove: a partition whose write found
// it deposed (fence, what an ErrNotLeader from an append or its wait does)
// is unloaded at once, although the leader view still names this node,
// and stays so through changes of other partitions; a new leader epoch of
// its own loads it again, with its offsets.
func TestDeposedPartitionWaitsForTheViewToMove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, co, fake := openWithLeaders(t, vfs.NewMem())
	defer cl.Close()
	defer co.Close()
	const group = "g"
	index := partitionFor(group, 3)
	commitOne(ctx, t, co, group, TopicPartition{"t", 0}, 5)
	if err := co.do(ctx, func(int64) { co.fence(index, co.parts[index].gen) }); err != nil {
		t.Fatal(err)
	}
	if _, err := co.FetchOffsets(ctx, group, nil); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("fetch from a deposed partition: %v, want ErrNotCoordinator", err)
	}
	fake.bump((index + 1) % 3)
	if _, err := co.FetchOffsets(ctx, group, nil); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("fetch after another partition's change: %v, want ErrNotCoordinator", err)
	}
	fake.bump(index)
	got, err := fetchLoaded(ctx, co, group)
	if err != nil || got[TopicPartition{"t", 0}].Offset != 5 {
		t.Fatalf("fetch once the partition's epoch moved: %v %v, want t-0 at 5", got, err)
	}
}

// TestNotCoordinatorHidesNotLeader: a write that found the partition
// deposed answers NOT_COORDINATOR, so the Kafka error table must not see
// the partition's ErrNotLeader (NOT_LEADER_OR_FOLLOWER) in it.
func TestNotCoordinatorHidesNotLeader(t *testing.T) {
	cause := fmt.Errorf("append to %s-0: %w", OffsetsTopic, partition.ErrNotLeader)
	if !isNotLeader(cause) {
		t.Fatal("isNotLeader misses a wrapped partition.ErrNotLeader")
	}
	err := notCoordinator(cause)
	if !errors.Is(err, ErrNotCoordinator) || errors.Is(err, partition.ErrNotLeader) {
		t.Fatalf("notCoordinator(%v) = %v: want ErrNotCoordinator alone", cause, err)
	}
}

// TestSchedulerRefusalIsNotLeader: an offsets write the replica scheduler
// refused because the partition's replica left it (a move, a renewal, the
// node closing) fences the coordinator like a lost leadership, so the
// request is answered NOT_COORDINATOR and the client finds the new one.
func TestSchedulerRefusalIsNotLeader(t *testing.T) {
	for _, err := range []error{replica.ErrUnknownGroup, replica.ErrClosed} {
		if !isNotLeader(fmt.Errorf("append to %s-0: %w", OffsetsTopic, err)) {
			t.Errorf("%v is not taken for a lost leadership", err)
		}
	}
}

// TestExpiryAfterLeadershipRegainedReloadsFirst: the loop was busy while
// an offsets partition's leadership went to another node, which
// acknowledged a commit, and came back in a new epoch; meanwhile the
// retention of the group as loaded before passed. When the loop frees up,
// the timer and the leadership change are both ready: whichever it takes
// first, the expiry must not act on the groups loaded before (it would
// write tombstones over the other leader's commit), so the commit stays.
func TestExpiryAfterLeadershipRegainedReloadsFirst(t *testing.T) {
	for run := range 8 { // the loop's select picks either case at random
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			clock := env.NewManualClock(time.Now())
			e := env.Real()
			e.FS, e.Logger, e.Clock = vfs.NewMem(), logger, clock
			cl, err := cluster.Open(e, cluster.DefaultConfig("/data"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			fake := newFakeLeaders(t, cl)
			cfg := DefaultConfig()
			cfg.InitialRebalanceDelayMs, cfg.OffsetsTopicPartitions, cfg.OffsetsRetentionMs, cfg.Leaders = 0, 3, 60_000, fake
			co, err := Open(cl, cfg, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer co.Close()
			const group = "g"
			index, tp := partitionFor(group, 3), TopicPartition{"t", 0}
			commitOne(ctx, t, co, group, tp, 5)
			running, release := make(chan struct{}), make(chan struct{})
			go func() { _ = co.do(ctx, func(int64) { close(running); <-release }) }()
			<-running
			fake.move(index, true)
			p, err := cl.Partition(OffsetsTopic, index)
			if err != nil {
				t.Fatal(err)
			}
			later := clock.Now().Add(50 * time.Second).UnixMilli() // kept past the first commit's retention
			res, err := p.Append(batch.Build([]batch.Record{{Key: offsetKey(group, tp),
				Value: offsetValue(OffsetCommit{Offset: 8, LeaderEpoch: -1, CommitTimestampMs: later})}}, batch.None))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitAppended(ctx, res, true); err != nil {
				t.Fatal(err)
			}
			fake.move(index, false)
			clock.Advance(61 * time.Second)
			close(release)
			got, err := fetchLoaded(ctx, co, group)
			if err != nil {
				t.Fatal(err)
			}
			if got[tp].Offset != 8 {
				t.Fatalf("offsets after the leadership came back: %+v, want t-0 at 8 (the other leader's commit)", got)
			}
		})
	}
}

// TestWriteOfAnEarlierEpochsLoadIsFenced: a change decided on groups
// loaded while the partition led in an earlier epoch (a leadership lost
// and won back before the leader view moved) is not appended: the commit
// answers NOT_COORDINATOR and the partition is loaded again.
func TestWriteOfAnEarlierEpochsLoadIsFenced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, co, fake := openWithLeaders(t, vfs.NewMem())
	defer cl.Close()
	defer co.Close()
	const group = "g"
	index, tp := partitionFor(group, 3), TopicPartition{"t", 0}
	commitOne(ctx, t, co, group, tp, 5)
	p, err := cl.Partition(OffsetsTopic, index)
	if err != nil {
		t.Fatal(err)
	}
	end := p.LogEndOffset()
	if err := co.do(ctx, func(int64) { co.parts[index].writeEpoch++ }); err != nil {
		t.Fatal(err)
	}
	res, err := co.CommitOffsets(ctx, CommitRequest{Group: group, Generation: -1}, map[TopicPartition]OffsetCommit{tp: {Offset: 6, LeaderEpoch: -1}})
	requireNotCoordinator(t, "a commit decided on an earlier epoch's load", err, res[tp])
	if got := p.LogEndOffset(); got != end {
		t.Fatalf("the fenced commit moved the log end from %d to %d", end, got)
	}
	fake.bump(index) // the leader view catches up with the new epoch
	got, err := fetchLoaded(ctx, co, group)
	if err != nil || got[tp].Offset != 5 {
		t.Fatalf("offsets after the reload: %+v %v, want t-0 at 5", got, err)
	}
}

// commitOne commits offset for tp as a simple consumer of group (no
// generation) and fails the test on an error.
func commitOne(ctx context.Context, t *testing.T, co *Coordinator, group string, tp TopicPartition, offset int64) {
	t.Helper()
	res, err := co.CommitOffsets(ctx, CommitRequest{Group: group, Generation: -1}, map[TopicPartition]OffsetCommit{tp: {Offset: offset, LeaderEpoch: -1}})
	if err != nil || res[tp] != nil {
		t.Fatalf("commit %v at %d: %v %v", tp, offset, err, res[tp])
	}
}
