package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Commands proposed from every node (forwarded from followers) are applied
// once, in one order: the states are byte-identical everywhere, and each
// proposer sees its own write when Propose returns.
func TestProposalsFromEveryNodeGiveOneState(t *testing.T) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { testProposalsFromEveryNode(t, newClusterOf(t, 3, 1000, k.durable)) })
	}
}

func testProposalsFromEveryNode(t *testing.T, cl *cluster) {
	cl.leader()
	var firstIDs []int64
	for id := int32(1); id <= 3; id++ {
		c := cl.nodes[id].c
		name := fmt.Sprintf("topic-%d", id)
		res := propose(t, c, createTopic(t, c, name, 3))
		if len(res.GroupIds) != 3 {
			t.Fatalf("node %d: CreateTopic gave groups %v", id, res.GroupIds)
		}
		if _, ok := findTopic(c.State(), name); !ok {
			t.Fatalf("node %d: its own topic %q not applied when Propose returned", id, name)
		}
		propose(t, c, setConfigs(name, map[string]string{"retention.ms": strconv.Itoa(int(id) * 1000)}))
		firstIDs = append(firstIDs, propose(t, c, allocate(id)).FirstProducerId)
	}
	if firstIDs[0] == firstIDs[1] || firstIDs[1] == firstIDs[2] || firstIDs[0] == firstIDs[2] {
		t.Fatalf("producer id blocks overlap: %v", firstIDs)
	}
	cl.converge(cl.leader().c.Applied())
	st := cl.nodes[2].c.State()
	if len(st.Topics) != 3 || st.Topics[2].Configs["retention.ms"] != "3000" {
		t.Fatalf("state %v", st.Topics)
	}
}

// A refused command is a Result with its code on the proposer, applied
// (as a refusal) everywhere.
func TestRefusalIsAResult(t *testing.T) {
	cl := newCluster(t, 3, 1000)
	follower := cl.follower()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	res, err := follower.c.Propose(ctx, setConfigs("missing", map[string]string{"retention.ms": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Code != metav1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC {
		t.Fatalf("result %v, want UNKNOWN_TOPIC", res)
	}
	cl.converge(follower.c.Applied())
}

// The leader stops: the others elect a new one, and proposals from both
// (one forwarded) keep working; the old leader restarted catches up.
func TestLeaderLossThenProposalsContinue(t *testing.T) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { testLeaderLoss(t, newClusterOf(t, 3, 1000, k.durable)) })
	}
}

func testLeaderLoss(t *testing.T, cl *cluster) {
	old := cl.leader()
	propose(t, old.c, createTopic(t, old.c, "before", 1))
	cl.stop(old.id)
	// A proposal forwarded to the stopped leader has an unknown fate
	// (ErrTimeout); once the others agree on a new leader, proposals work.
	cl.leader()
	for _, n := range cl.nodes {
		name := fmt.Sprintf("after-%d", n.id)
		propose(t, n.c, createTopic(t, n.c, name, 1))
		propose(t, n.c, allocate(n.id))
	}
	if cl.leader().id == old.id {
		t.Fatal("the stopped node still leads")
	}
	restarted := cl.start(old.id)
	cl.converge(cl.leader().c.Applied())
	if got := len(restarted.c.State().Topics); got != 3 {
		t.Fatalf("restarted node has %d topics, want 3", got)
	}
}

// A follower stopped while the leader snapshots and compacts its log gets
// the leader's snapshot when it comes back, and then the entries after it;
// restarted right after, it starts from that snapshot.
func TestFarBehindFollowerGetsTheSnapshot(t *testing.T) {
	for _, k := range logKinds {
		t.Run(k.name, func(t *testing.T) { testFarBehind(t, newClusterOf(t, 3, 4, k.durable)) })
	}
}

func testFarBehind(t *testing.T, cl *cluster) {
	lead := cl.leader()
	lagging := cl.follower()
	cl.stop(lagging.id)
	for i := range 12 {
		propose(t, lead.c, allocate(lead.id))
		if i == 5 {
			propose(t, lead.c, createTopic(t, lead.c, "while-away", 2))
		}
	}
	waitFor(t, "the leader compacts its log", func() bool {
		first, _ := lead.c.log.FirstIndex()
		return first > 10
	})
	if err := lead.c.SnapshotErr(); err != nil {
		t.Fatal(err)
	}
	back := cl.start(lagging.id)
	cl.converge(lead.c.Applied())
	if back.c.Restores() == 0 {
		t.Fatal("the follower caught up without the leader's snapshot")
	}
	if _, own := back.c.log.(*metaLog); own != cl.durable {
		t.Fatalf("the controller's own raftlog in use: %v, want %v", own, cl.durable)
	}
	// Restarted right after the restore, before it compacts on its own,
	// it starts from the installed snapshot.
	cl.stop(back.id)
	back = cl.start(back.id)
	propose(t, back.c, createTopic(t, back.c, "after-snapshot", 1))
	cl.converge(back.c.Applied())
	if _, ok := findTopic(back.c.State(), "while-away"); !ok {
		t.Fatal("the restarted follower lost the snapshot's state")
	}
}

// A single node bootstraps a one-voter group, writes meta-snapshot files
// and restarts from its directory with the same state.
func TestSingleNodeRestartsFromItsDirectory(t *testing.T) {
	fs := vfs.NewMem()
	log := replica.NewMemStorage()
	var notified atomic.Uint64 // OnApplied's last index
	open := func() (*Controller, *replica.Scheduler) {
		e := testEnv(fs, 1)
		ident, err := OpenIdentity(fs, "/data", 1, "")
		if errors.Is(err, ErrNoIdentity) {
			clusterID, cerr := NewClusterID(e)
			if cerr != nil {
				t.Fatal(cerr)
			}
			ident, err = OpenIdentity(fs, "/data", 1, clusterID)
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(Config{Env: e, DataDir: "/data", Identity: ident, Log: log, Scheduler: s, SnapshotEntries: 3,
			OnApplied: func(index uint64) { notified.Store(index) }})
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	c, s := open()
	propose(t, c, createTopic(t, c, "kept", 2))
	for range 8 {
		propose(t, c, allocate(1))
	}
	waitFor(t, "a meta-snapshot file past index 6", func() bool {
		data, err := vfs.ReadFile(fs, "/data/meta/meta-snapshot")
		if err != nil {
			return false
		}
		_, st, err := decodeMetaState(data)
		return err == nil && st.state.AppliedIndex > 6
	})
	want := c.State()
	// OnApplied runs after the proposer was answered, on the worker.
	waitFor(t, "OnApplied told of the applied index", func() bool { return notified.Load() == want.AppliedIndex })
	c.Close()
	s.Close()
	log.Crash()

	c, s = open()
	defer s.Close()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := c.WaitApplied(ctx, want.AppliedIndex); err != nil {
		t.Fatal(err)
	}
	got := c.State()
	// The restarted node applies its new term's empty entry on top, which
	// moves only the applied index.
	got.AppliedIndex, want.AppliedIndex = 0, 0
	if !proto.Equal(got, want) {
		t.Fatalf("restarted state\n%v\nwant\n%v", got, want)
	}
	if res := propose(t, c, allocate(1)); res.FirstProducerId != 8*meta.ProducerIDBlock {
		t.Fatalf("after 8 blocks the next starts at %d", res.FirstProducerId)
	}
}

type noSender struct{}

func (noSender) Send(uint64, []*raftpb.Message) {}

// A legacy single node's cluster.json and topics.json become the first
// state of its one-voter meta group, cluster id and topics kept.
func TestLegacyDirectoryBootstrapsTheMetaGroup(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	self := &metav1.Broker{NodeId: 1}
	if _, err := MigrateLegacyDir(fs, "/data", self); !errors.Is(err, ErrNoLegacy) {
		t.Fatalf("empty directory: %v, want ErrNoLegacy", err)
	}
	files := map[string]string{
		"cluster.json": `{"version":1,"cluster_id":"c-legacy","next_producer_id":3000}`,
		"topics.json":  `{"version":1,"topics":[{"name":"orders","id":"AAAAAAAAAAAAAAAAAAAAAQ","partitions":2}]}`,
	}
	for name, body := range files {
		if err := vfs.WriteFileAtomic(fs, "/data/"+name, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := MigrateLegacyDir(fs, "/data", self)
	if err != nil {
		t.Fatal(err)
	}
	e := testEnv(fs, 1)
	ident, err := OpenIdentity(fs, "/data", 1, st.ClusterId)
	if err != nil {
		t.Fatal(err)
	}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := Open(Config{Env: e, DataDir: "/data", Identity: ident, Log: replica.NewMemStorage(), Scheduler: s, Bootstrap: st})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := propose(t, c, allocate(1)); res.FirstProducerId != 3000 {
		t.Fatalf("first producer id %d, want 3000 (after the legacy block)", res.FirstProducerId)
	}
	got := c.State()
	if got.ClusterId != "c-legacy" || len(got.Topics) != 1 || len(got.Topics[0].Partitions) != 2 {
		t.Fatalf("state %v", got)
	}
}

// An empty meta log beside an existing node.json is a node that lost its
// log: it must not bootstrap and vote as new.
func TestOpenRefusesALostMetaLog(t *testing.T) {
	fs := vfs.NewMem()
	e := testEnv(fs, 1)
	if err := writeIdentity(fs, "/data", Identity{Version: nodeFileVersion, ClusterID: "c", NodeID: 1, Incarnation: 1}); err != nil {
		t.Fatal(err)
	}
	ident, err := OpenIdentity(fs, "/data", 1, "c") // the restart: node.json exists
	if err != nil {
		t.Fatal(err)
	}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := Open(Config{Env: e, DataDir: "/data", Identity: ident, Log: replica.NewMemStorage(), Scheduler: s}); err == nil {
		c.Close()
		t.Fatal("opened an empty meta log under an existing identity")
	}
}

// Proposals made at once from every node each get their own Result: no
// waiter is answered with another proposal's, no producer id block is
// handed out twice.
func TestConcurrentProposalsFromEveryNode(t *testing.T) {
	cl := newCluster(t, 3, 8)
	cl.leader()
	const perNode = 10
	type answer struct {
		first int64
		err   error
	}
	answers := make(chan answer, 3*perNode)
	for _, n := range cl.nodes {
		for range perNode {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitMax)
				defer cancel()
				res, err := n.c.Propose(ctx, allocate(n.id))
				if err == nil {
					err = meta.ResultError(res)
				}
				answers <- answer{res.GetFirstProducerId(), err}
			}()
		}
	}
	seen := map[int64]bool{}
	for range 3 * perNode {
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		if seen[a.first] || a.first%meta.ProducerIDBlock != 0 {
			t.Fatalf("block %d handed out twice or misaligned", a.first)
		}
		seen[a.first] = true
	}
	cl.converge(cl.leader().c.Applied())
	if next := cl.nodes[1].c.State().NextProducerId; next != 3*perNode*meta.ProducerIDBlock {
		t.Fatalf("next producer id %d after %d blocks", next, 3*perNode)
	}
}

// With no quorum a proposal fails within ProposeTimeout: ErrNotController
// when it was never proposed, ErrTimeout when its fate is unknown.
func TestProposalWithoutQuorumIsBounded(t *testing.T) {
	cl := newCluster(t, 3, 1000)
	propose(t, cl.leader().c, allocate(1))
	for id := range cl.nodes {
		cl.stop(id)
	}
	cl.proposeTimeout = 500 * time.Millisecond
	survivor := cl.start(2) // alone: it never learns of a leader
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	_, err := survivor.c.Propose(ctx, allocate(survivor.id))
	if !errors.Is(err, ErrNotController) && !errors.Is(err, ErrTimeout) {
		t.Fatalf("propose without a quorum: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %v with a 500 ms timeout", took)
	}
}

// A first start that stopped after bootstrapping the meta log but before
// writing node.json starts again as new, keeping the log and the cluster id
// it holds; a log past its bootstrap without node.json is refused.
func TestFirstStartInterruptedBeforeTheNodeFile(t *testing.T) {
	fs := vfs.NewMem()
	e := testEnv(fs, 1)
	log := replica.NewMemStorage()
	first, err := OpenIdentity(fs, "/data", 1, "drawn-first")
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{e: e, cfg: Config{DataDir: "/data", Log: log}, log: log, dir: "/data/meta", id: first.ReplicaID(), identity: first}
	if err := c.bootstrap(); err != nil { // then the crash, before node.json
		t.Fatal(err)
	}
	again, err := OpenIdentity(fs, "/data", 1, "drawn-again")
	if err != nil || !again.New {
		t.Fatalf("identity after the crash: %+v, %v", again, err)
	}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctl, err := Open(Config{Env: e, DataDir: "/data", Identity: again, Log: log, Scheduler: s})
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Identity().ClusterID != "drawn-first" || ctl.State().ClusterId != "drawn-first" {
		t.Fatalf("cluster id %q, state's %q", ctl.Identity().ClusterID, ctl.State().ClusterId)
	}
	propose(t, ctl, allocate(1))
	ctl.Close()
	stored, err := OpenIdentity(fs, "/data", 1, "")
	if err != nil || stored.New || stored.ClusterID != "drawn-first" {
		t.Fatalf("node.json: %+v, %v", stored, err)
	}

	// The same log, used and then without node.json, is not a first start.
	if err := fs.Remove("/data/node.json"); err != nil {
		t.Fatal(err)
	}
	lost, err := OpenIdentity(fs, "/data", 1, "drawn-third")
	if err != nil {
		t.Fatal(err)
	}
	if ctl, err := Open(Config{Env: e, DataDir: "/data", Identity: lost, Log: log, Scheduler: s}); err == nil {
		ctl.Close()
		t.Fatal("opened a used meta log as a new node's")
	}
}

// A meta-snapshot file ahead of the log's snapshot (a crash between
// writing it and compacting) is where a restart starts applying from.
func TestRestartStartsFromASnapshotFileAheadOfTheLog(t *testing.T) {
	fs := vfs.NewMem()
	log := replica.NewMemStorage()
	e := testEnv(fs, 1)
	open := func(id Identity) (*Controller, *replica.Scheduler) {
		s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(Config{Env: e, DataDir: "/data", Identity: id, Log: log, Scheduler: s})
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	ident, err := OpenIdentity(fs, "/data", 1, "c")
	if err != nil {
		t.Fatal(err)
	}
	c, s := open(ident)
	propose(t, c, createTopic(t, c, "kept", 1))
	for range 4 {
		propose(t, c, allocate(1))
	}
	c.mu.Lock()
	st, err := c.machine.Snapshot()
	index, next := c.machine.AppliedIndex(), c.appliedNext
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := vfs.WriteFileAtomic(fs, c.snapshotFile(), encodeSnapshot(next, st)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	log.Crash()

	if ident, err = OpenIdentity(fs, "/data", 1, ""); err != nil {
		t.Fatal(err)
	}
	c, s = open(ident)
	defer s.Close()
	defer c.Close()
	c.mu.Lock()
	from := c.snapshotIndex
	c.mu.Unlock()
	if snap, _ := log.Snapshot(); from != index || snap.GetMetadata().GetIndex() != bootstrapIndex {
		t.Fatalf("started from %d (log snapshot at %d), want the file's %d", from, snap.GetMetadata().GetIndex(), index)
	}
	if res := propose(t, c, allocate(1)); res.FirstProducerId != 4*meta.ProducerIDBlock {
		t.Fatalf("first producer id %d", res.FirstProducerId)
	}
}

// A single node over its own raftlog meta log restarts from its directory
// with the same state; only the state of the log's compaction index is
// kept beside it, and no segment wholly below that index.
func TestSingleNodeOnRaftLogRestarts(t *testing.T) {
	fs := vfs.NewMem()
	e := testEnv(fs, 1)
	open := func() (*Controller, *replica.Scheduler) {
		ident, err := OpenIdentity(fs, "/data", 1, "c")
		if err != nil {
			t.Fatal(err)
		}
		s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1}, noSender{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := Open(Config{Env: e, DataDir: "/data", Identity: ident, Scheduler: s, SnapshotEntries: 4, MetaSegmentBytes: 512})
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	c, s := open()
	propose(t, c, createTopic(t, c, "kept", 2))
	const blocks = 29 // several segments of 512 bytes
	for range blocks {
		propose(t, c, allocate(1))
	}
	waitFor(t, "a compaction", func() bool { return c.SnapshotErr() == nil && c.snapshotIndexNow() > 24 })
	// One more, at the last applied entry: the snapshot goroutine's last
	// one may predate the appends that rolled the last segment, and then
	// the segment before it is reclaimed only at the next.
	if err := c.snapshot(); err != nil {
		t.Fatal(err)
	}
	want := c.State()
	c.Close()
	s.Close()
	checkReclaimed(t, fs, c.snapshotIndexNow())
	names, err := fs.List("/data/meta")
	if err != nil {
		t.Fatal(err)
	}
	states := 0
	for _, name := range names {
		if len(name) > len(statePrefix) && name[:len(statePrefix)] == statePrefix {
			states++
		}
	}
	if states != 1 {
		t.Fatalf("kept states: %v", names)
	}

	c, s = open()
	defer s.Close()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	if err := c.WaitApplied(ctx, want.AppliedIndex); err != nil {
		t.Fatal(err)
	}
	got := c.State()
	got.AppliedIndex, want.AppliedIndex = 0, 0
	if !proto.Equal(got, want) {
		t.Fatalf("restarted state\n%v\nwant\n%v", got, want)
	}
	if res := propose(t, c, allocate(1)); res.FirstProducerId != blocks*meta.ProducerIDBlock {
		t.Fatalf("first producer id %d after %d blocks", res.FirstProducerId, blocks)
	}
}

// checkReclaimed opens the closed meta log under /data and checks that it
// was written to more than one segment and that none lies wholly below
// the entry after its compaction index.
func checkReclaimed(t *testing.T, fs vfs.FS, compacted uint64) {
	t.Helper()
	l, err := raftlog.Open(fs, "/data/meta/log", metaStorageConfig(512), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	keep, err := l.OffsetOf(compacted + 1)
	if err != nil {
		t.Fatal(err)
	}
	segs := l.Segments().Segments()
	if l.Segments().StartOffset() == 0 || segs[0].NextOffset <= keep && len(segs) > 1 {
		t.Fatalf("segments %+v, start %d, compaction point at offset %d", segs, l.Segments().StartOffset(), keep)
	}
}

// snapshot runs from the snapshot goroutine, AddNode and join goroutines
// at once: concurrent calls each succeed and leave the meta-snapshot file
// at the applied index.
func TestConcurrentSnapshots(t *testing.T) {
	c := openSingle(t, make(frameRecorder, 64))
	for round := range 20 {
		propose(t, c, allocate(1))
		errs := make(chan error, 16)
		for range 16 {
			go func() { errs <- c.snapshot() }()
		}
		for range 16 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if got, want := c.snapshotIndexNow(), c.Applied(); got != want {
			t.Fatalf("round %d: snapshot at %d, applied %d", round, got, want)
		}
	}
}
