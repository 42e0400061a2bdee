package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestPlanMove walks planMove through a move of {1,2,3} to {2,3,4} led by
// 1: one learner at a time, the wait for it to catch up, the hand-over
// of the leadership, the joint change, the wait while joint, the end; and
// its refusals.
func TestPlanMove(t *testing.T) {
	want := []uint64{2, 3, 4}
	g := func(voters, learners, outgoing []uint64, match map[uint64]uint64) groupProgress {
		return groupProgress{self: 1, conf: &raftpb.ConfState{Voters: voters, Learners: learners, VotersOutgoing: outgoing},
			match: match, last: 1000, first: 2}
	}
	caught := map[uint64]uint64{1: 1000, 2: 1000, 3: 990, 4: 1000 - catchUpEntries}
	cases := []struct {
		name string
		g    groupProgress
		want []uint64
		kind moveKind
		cc   string
		to   uint64
	}{
		{"add the new replica as a learner", g([]uint64{1, 2, 3}, nil, nil, caught), want, moveConf, "AddLearnerNode 4", 0},
		{"wait for the learner", g([]uint64{1, 2, 3}, []uint64{4}, nil, map[uint64]uint64{2: 1000, 4: 10}), want, moveWait, "", 0},
		{"a leaving leader hands over first", g([]uint64{1, 2, 3}, []uint64{4}, nil, caught), want, moveTransfer, "", 2},
		{"joint change once led by a staying voter", withSelf(g([]uint64{1, 2, 3}, []uint64{4}, nil, caught), 2), want, moveConf,
			"AddNode 4 RemoveNode 1", 0},
		{"no staying voter: joint change, the leader steps down", g([]uint64{1}, []uint64{4}, nil, caught), []uint64{4}, moveConf,
			"AddNode 4 RemoveNode 1", 0},
		{"joint: raft leaves it", g([]uint64{2, 3, 4}, nil, []uint64{1, 2, 3}, caught), want, moveWait, "", 0},
		{"done", g([]uint64{2, 3, 4}, nil, nil, caught), want, moveDone, "", 0},
		{"cancelled before joint: the learner goes", g([]uint64{1, 2, 3}, []uint64{4}, nil, caught), []uint64{1, 2, 3}, moveConf,
			"RemoveNode 4", 0},
		{"cancelled after joint: the old voters come back", withSelf(g([]uint64{2, 3, 4}, nil, nil, caught), 2), []uint64{1, 2, 3}, moveConf,
			"AddLearnerNode 1", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step := planMove(tc.g, tc.want)
			if step.kind != tc.kind || step.to != tc.to {
				t.Fatalf("step %+v, want kind %d to %d", step, tc.kind, tc.to)
			}
			if got := changes(step.cc); got != tc.cc {
				t.Fatalf("change %q, want %q", got, tc.cc)
			}
		})
	}
	// A log compacted past the bootstrap: the learner is added all the
	// same, and catches up through the leader's snapshot once it names it.
	compacted := func(learners []uint64, match map[uint64]uint64, members []uint64) groupProgress {
		c := g([]uint64{1, 2, 3}, learners, nil, match)
		c.first, c.last, c.snapshotMembers = 500, 520, members
		return c
	}
	fresh := map[uint64]uint64{1: 520, 2: 520, 3: 520}
	for _, tc := range []struct {
		name string
		g    groupProgress
		kind moveKind
		cc   string
	}{
		{"compacted: add the learner", compacted(nil, fresh, nil), moveConf, "AddLearnerNode 4"},
		{"compacted: a snapshot not naming the learner, compact again", compacted([]uint64{4}, fresh, []uint64{1, 2, 3}), moveCompact, ""},
		{"compacted: a snapshot naming it, wait however short the log", compacted([]uint64{4}, fresh, []uint64{1, 2, 3, 4}), moveWait, ""},
		{"compacted: installed and near, joint change", withSelf(compacted([]uint64{4}, map[uint64]uint64{2: 520, 3: 520, 4: 510}, nil), 2), moveConf,
			"AddNode 4 RemoveNode 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := planMove(tc.g, want)
			if step.kind != tc.kind {
				t.Fatalf("step %+v, want kind %d", step, tc.kind)
			}
			if got := changes(step.cc); got != tc.cc {
				t.Fatalf("change %q, want %q", got, tc.cc)
			}
		})
	}
}

func withSelf(g groupProgress, self uint64) groupProgress { g.self = self; return g }

func changes(cc *raftpb.ConfChangeV2) string {
	var out []string
	for _, c := range cc.GetChanges() {
		out = append(out, fmt.Sprintf("%s %d", strings.TrimPrefix(c.GetType().String(), "ConfChange"), c.GetNodeId()))
	}
	return strings.Join(out, " ")
}

// appender appends to one partition through whichever node leads it,
// acks=all, until stopped, and keeps what was acknowledged.
type appender struct {
	tn    *testNodes
	topic string
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	acked map[int64]string
	err   error
}

func startAppender(tn *testNodes, topic string) *appender {
	a := &appender{tn: tn, topic: topic, stop: make(chan struct{}), done: make(chan struct{}), acked: map[int64]string{}}
	go a.run()
	return a
}

// appendsMax bounds the records one appender writes.
const appendsMax = 5000

func (a *appender) run() {
	defer close(a.done)
	deadline := time.Now().Add(nodeWaitMax)
	for i := 0; i < appendsMax; i++ {
		select {
		case <-a.stop:
			return
		default:
		}
		if time.Now().After(deadline) {
			a.fail(errors.New("appends went on past the test's bound"))
			return
		}
		value := fmt.Sprintf("v%d", i)
		off, err := a.appendOnce(value)
		if err != nil {
			time.Sleep(5 * time.Millisecond) // a leader change is under way: try again on whoever leads
			continue
		}
		a.mu.Lock()
		a.acked[off] = value
		a.mu.Unlock()
	}
}

func (a *appender) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

func (a *appender) appendOnce(value string) (int64, error) {
	a.tn.nodesMu.Lock()
	nodes := slices.Collect(maps.Values(a.tn.nodes))
	a.tn.nodesMu.Unlock()
	for _, c := range nodes {
		if l, err := c.Leader(a.topic, 0); err != nil || !l.Local {
			continue
		}
		p, err := c.Partition(a.topic, 0)
		if err != nil {
			return 0, err
		}
		res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte(value)}}, batch.None))
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.WaitAppended(ctx, res, true); err != nil {
			return 0, err
		}
		return res.BaseOffset, nil
	}
	return 0, ErrNotLeader
}

// finish stops the appender and returns what was acknowledged.
func (a *appender) finish(t *testing.T) map[int64]string {
	t.Helper()
	close(a.stop)
	<-a.done
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.acked
}

// replicaSet is a partition's replicas in the placement, sorted.
func replicaSet(t *testing.T, c *Cluster, topic string) []int32 {
	t.Helper()
	tp, ok := c.Topic(topic)
	if !ok {
		t.Fatalf("node %d: no topic %s", c.NodeID(), topic)
	}
	return slices.Sorted(slices.Values(tp.Partitions[0].Replicas))
}

// waitMoved waits until no node lists a move of topic's partition 0 and
// every node places it on want.
func (tn *testNodes) waitMoved(topic string, want []int32) {
	tn.t.Helper()
	for id, c := range tn.nodes {
		waitUntil(tn.t, fmt.Sprintf("node %d to see %s-0 moved to %v", id, topic, want), func() bool {
			tp, ok := c.Topic(topic)
			return ok && len(c.Reassignments()) == 0 && slices.Equal(slices.Sorted(slices.Values(tp.Partitions[0].Replicas)), want)
		})
	}
}

// TestClusterMovesPartition: four nodes; an RF 3 partition is moved off
// its leader onto the fourth node while appends go on through whoever
// leads. Every acknowledged record is on every new replica at its offset,
// the replicas agree, the node moved off holds no replica and no
// directory, and appends go on after the move.
func TestClusterMovesPartition(t *testing.T) {
	tn := startNodes(t, 4)
	if _, err := tn.nodes[1].CreateTopicReplicated("moving", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	old := replicaSet(t, tn.nodes[1], "moving")
	lead := tn.leader("moving", 0)
	var added int32
	for id := range tn.nodes {
		if !slices.Contains(old, id) {
			added = id
		}
	}
	target := append(slices.DeleteFunc(slices.Clone(old), func(n int32) bool { return n == lead }), added)
	slices.Sort(target)

	a := startAppender(tn, "moving")
	waitUntil(t, "a few appends before the move", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 20 })
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	id, err := tn.nodes[added].Reassign(ctx, "moving", 0, target)
	if err != nil {
		t.Fatal(err)
	}
	if id == 0 {
		t.Fatal("the reassignment has no id")
	}
	tn.waitMoved("moving", target)
	waitUntil(t, "appends after the move", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.acked) >= 40
	})
	acked := a.finish(t)

	newLead := tn.leader("moving", 0)
	t.Logf("moved %v (led by %d) to %v (led by %d) under %d acknowledged appends", old, lead, target, newLead, len(acked))
	if !slices.Contains(target, newLead) {
		t.Fatalf("node %d leads, not one of %v", newLead, target)
	}
	p, err := tn.nodes[newLead].Partition("moving", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := records(t, p)
	for _, n := range target {
		q, err := tn.nodes[n].Partition("moving", 0)
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		waitUntil(t, fmt.Sprintf("node %d to apply everything", n), func() bool { return q.HighWatermark() >= p.HighWatermark() })
		got := records(t, q)
		if !slices.Equal(got, want) {
			t.Fatalf("node %d holds %d records, the leader %d", n, len(got), len(want))
		}
		held := map[int64]string{}
		for _, r := range got {
			var off int64
			var v string
			if _, err := fmt.Sscanf(strings.Replace(r, ":", " ", 1), "%d %s", &off, &v); err != nil {
				t.Fatal(err)
			}
			held[off] = v
		}
		for off, v := range acked {
			if held[off] != v {
				t.Fatalf("node %d: acknowledged %d:%s, holds %q", n, off, v, held[off])
			}
		}
	}
	if _, err := tn.nodes[lead].Partition("moving", 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("node %d moved off: partition %v, want ErrNotLeader", lead, err)
	}
	waitUntil(t, fmt.Sprintf("node %d to remove its replica's directory", lead), func() bool {
		return !slices.ContainsFunc(listData(t, tn.fs[lead], "/data"), func(n string) bool { return strings.HasPrefix(n, "moving-") })
	})
}

// TestClusterTransfersLeaders: a partition's leadership moves to the node
// asked for (asked of that node; a third node refuses and names the
// leader), and rebalancing brings it back to its preferred leader.
func TestClusterTransfersLeaders(t *testing.T) {
	tn := startNodes(t, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("led", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("led", 0)
	tp, _ := tn.nodes[1].Topic("led")
	preferred := tp.Partitions[0].Replicas[0]
	// to is neither the leader nor the preferred one, so a rebalance has
	// a transfer to make afterwards; third is the node left.
	var to, third int32
	for id := range tn.nodes {
		if id != lead && id != preferred {
			to = id
		}
	}
	for id := range tn.nodes {
		if id != lead && id != to {
			third = id
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if err := tn.nodes[third].TransferLeader(ctx, "led", 0, to); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("transfer asked of a follower that is not the transferee: %v, want ErrNotLeader", err)
	}
	if err := tn.nodes[to].TransferLeader(ctx, "led", 0, to); err != nil {
		t.Fatal(err)
	}
	if got := tn.leader("led", 0); got != to {
		t.Fatalf("led by %d after the transfer to %d", got, to)
	}
	want := []string{fmt.Sprintf("%d:a", appendAll(t, tn.nodes[to], "led", 0, "a").BaseOffset)}
	tn.waitReplicated("led", 0, want)
	if err := tn.nodes[to].TransferLeader(ctx, "led", 0, 9); err == nil {
		t.Fatal("transfer to a node with no replica accepted")
	}

	n, err := tn.nodes[to].RebalanceLeaders()
	if err != nil || n != 1 {
		t.Fatalf("rebalance: %d transfers, %v; want 1", n, err)
	}
	waitUntil(t, "the preferred leader to lead again", func() bool { return tn.leader("led", 0) == preferred })
	if n, err := tn.nodes[preferred].RebalanceLeaders(); err != nil || n != 0 {
		t.Fatalf("rebalance when balanced: %d transfers, %v", n, err)
	}
}

// TestClusterTransferToWipedNodeWaitsForItsNewReplica: a transfer asked
// for while its node is down and wiped names that node's old replica; it
// asks again of the replica the refill gives the node's new incarnation
// (the old one never answers), and holds off while the node runs a new
// incarnation whose replica the refill has yet to place, so the refill's
// configuration change is not held behind transfers to a dead replica.
func TestClusterTransferToWipedNodeWaitsForItsNewReplica(t *testing.T) {
	tn := startNodes(t, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("led", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("led", 0)
	victim := tn.other(lead)
	want := []string{fmt.Sprintf("%d:a", appendAll(t, tn.nodes[lead], "led", 0, "a").BaseOffset)}
	tn.waitReplicated("led", 0, want)
	tn.stop(victim)
	tn.fs[victim] = vfs.NewMem()

	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tn.nodes[lead].TransferLeader(ctx, "led", 0, victim) }()
	tn.restart(victim)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := tn.leader("led", 0); got != victim {
		t.Fatalf("led by %d after the transfer to %d", got, victim)
	}
	tp, _ := tn.nodes[victim].Topic("led")
	if r := tp.Partitions[0].Replicas; !slices.Contains(r, victim) {
		t.Fatalf("replicas %v without the wiped node %d", r, victim)
	}
}

// TestClusterRemovesNode: four nodes; removing the metadata leader's node
// moves every replica it holds to the others, marks it REMOVED, takes it
// out of the brokers and of the metadata group's voters, with the
// partitions' records kept.
func TestClusterRemovesNode(t *testing.T) {
	tn := startNodes(t, 4)
	if _, err := tn.nodes[1].CreateTopicReplicated("drained", 4, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	gone := tn.controller()
	var want [4][]string
	for i := range int32(4) {
		lead := tn.leader("drained", i)
		want[i] = []string{fmt.Sprintf("%d:x", appendAll(t, tn.nodes[lead], "drained", i, "x").BaseOffset)}
	}
	via := tn.other(gone)
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	moves, err := tn.nodes[via].RemoveNode(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if len(moves) != 3 {
		t.Fatalf("%d moves off node %d, want 3 (RF 3 over 4 nodes): %+v", len(moves), gone, moves)
	}
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d to see node %d removed", id, gone), func() bool {
			return c.NodeState(gone) == "REMOVED" && !slices.ContainsFunc(c.Brokers(), func(b Broker) bool { return b.NodeID == gone })
		})
	}
	stayed := tn.other(gone)
	waitUntil(t, fmt.Sprintf("node %d to leave the metadata group's voters", gone), func() bool {
		cs, err := tn.nodes[stayed].ctl.Configuration()
		return err == nil && len(cs.GetVoters()) == 3 && !slices.ContainsFunc(cs.GetVoters(), func(r uint64) bool { return int32(r>>20) == gone })
	})
	tn.stop(gone)
	for i := range int32(4) {
		for id, c := range tn.nodes {
			tp, _ := c.Topic("drained")
			if slices.Contains(tp.Partitions[i].Replicas, gone) {
				t.Fatalf("node %d places drained-%d on %v", id, i, tp.Partitions[i].Replicas)
			}
		}
		tn.leader("drained", i)
		tn.waitReplicated("drained", i, want[i])
	}
}

// groupConf reads the configuration of topic-0's group on node id's
// replica.
func (tn *testNodes) groupConf(id int32, topic string) *raftpb.ConfState {
	tn.t.Helper()
	c := tn.nodes[id]
	tp, _ := c.Topic(topic)
	var cs *raftpb.ConfState
	if err := c.sched.Do(tp.Partitions[0].Group, func(r *replica.Replica) { cs = r.ConfState() }); err != nil {
		tn.t.Fatalf("node %d: %v", id, err)
	}
	return cs
}

// TestClusterCancelsMove: a move onto a node that is down cannot finish
// (its learner never catches up); cancelling it removes the learner and
// keeps the replicas, and appends go on throughout.
func TestClusterCancelsMove(t *testing.T) {
	tn := startNodes(t, 4)
	old, down := createOnThreeOfFour(tn, "stuck", nil)
	lead := tn.leader("stuck", 0)
	tn.stop(down)
	tn.controller() // the stopped node may have led the metadata group
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	// The leader and one more old replica stay, the third leaves for the
	// node that is down.
	stays := slices.DeleteFunc(slices.Clone(old), func(n int32) bool { return n == lead })[0]
	target := []int32{lead, stays, down}
	if _, err := tn.nodes[lead].Reassign(ctx, "stuck", 0, target); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the leader to add the new replica as a learner", func() bool {
		l := tn.leader("stuck", 0)
		return len(tn.groupConf(l, "stuck").GetLearners()) == 1
	})
	appendAll(t, tn.nodes[tn.leader("stuck", 0)], "stuck", 0, "during")
	leaving := slices.DeleteFunc(slices.Clone(old), func(n int32) bool { return slices.Contains(target, n) })
	if got := tn.nodes[lead].Reassignments(); len(got) != 1 || !slices.Equal(got[0].Adding(), []int32{down}) ||
		!slices.Equal(got[0].Removing(), leaving) {
		t.Fatalf("reassignments %+v, want the stuck move adding %d, removing %v", got, down, leaving)
	}
	if err := tn.nodes[lead].CancelReassignment(ctx, "stuck", 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the learner to be removed", func() bool {
		cs := tn.groupConf(tn.leader("stuck", 0), "stuck")
		return len(cs.GetLearners()) == 0 && len(cs.GetVotersOutgoing()) == 0 && len(cs.GetVoters()) == 3
	})
	for id, c := range tn.nodes {
		if len(c.Reassignments()) != 0 || !slices.Equal(replicaSet(t, c, "stuck"), old) {
			t.Fatalf("node %d: moves %+v, replicas %v, want none and %v", id, c.Reassignments(), replicaSet(t, c, "stuck"), old)
		}
	}
	if err := tn.nodes[lead].CancelReassignment(ctx, "stuck", 0); !errors.Is(err, ErrNoReassignment) {
		t.Fatalf("cancel with none running: %v, want ErrNoReassignment", err)
	}
	appendAll(t, tn.nodes[tn.leader("stuck", 0)], "stuck", 0, "after")
}

// TestStaleStateKeepsReplicaDirectory: a restarted node replays the
// metadata log from its last meta snapshot, so the first states it
// reconciles may predate the entry that placed its replica (a refill
// after a wipe, a move back). Such a state, not placing the replica here,
// must not remove the directory: the group would recreate the replica
// empty under the same id, a voter that forgot its log and votes (seed 237
// of TestSimulatedClusterPartitions lost acknowledged records so). Once
// the state is as new as the meta log at start, the replica reopens
// from its directory with its log.
func TestStaleStateKeepsReplicaDirectory(t *testing.T) {
	tn := startNodes(t, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("kept", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("kept", 0)
	a := startAppender(tn, "kept")
	waitUntil(t, "a few appends", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 5 })
	acked := int64(len(a.finish(t)))
	n := tn.other(lead)
	waitUntil(t, fmt.Sprintf("node %d to apply the appends", n), func() bool {
		p, err := tn.nodes[n].Partition("kept", 0)
		return err == nil && p.HighWatermark() >= acked
	})
	tn.stop(n)
	tn.restart(n)
	c := tn.nodes[n]
	dir := path.Join("/data", partitionDirName("kept", 0))
	before, err := raftlog.ReadState(tn.fs[n], path.Join(dir, raftStateFile))
	if err != nil {
		t.Fatal(err)
	}

	c.mu.Lock()
	current := c.ctl.State()
	if current.GetAppliedIndex() < c.ctl.StartIndex() || c.ctl.StartIndex() == 0 {
		c.mu.Unlock()
		t.Fatalf("state at %d, meta log at start %d: want a current state past a non-empty log", current.GetAppliedIndex(), c.ctl.StartIndex())
	}
	// The state as an older entry left it: this node's replica not yet
	// placed here.
	stale := proto.Clone(current).(*metav1.State)
	stale.AppliedIndex = c.ctl.StartIndex() - 1
	mp := stale.Topics[slices.IndexFunc(stale.Topics, func(t *metav1.Topic) bool { return t.Name == "kept" })].Partitions[0]
	mp.Replicas = slices.DeleteFunc(mp.Replicas, func(r uint64) bool { return r == c.replicaID() })
	c.reconciled = 0
	err = c.reconcileTo(stale)
	deferred := c.removalsDeferred
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !deferred {
		t.Fatal("no removal deferred by a state older than the meta log at start")
	}
	after, err := raftlog.ReadState(tn.fs[n], path.Join(dir, raftStateFile))
	if err != nil {
		t.Fatalf("the replica's directory, after a state older than the meta log at start: %v", err)
	}
	if after.ReplicaID != before.ReplicaID || after.Term != before.Term || after.Applied < before.Applied {
		t.Fatalf("raft-state %+v, was %+v", after, before)
	}

	c.mu.Lock()
	err = c.reconcileTo(current)
	deferred = c.removalsDeferred
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if deferred {
		t.Fatal("a current state placing the replica here left a removal deferred")
	}
	p, err := c.Partition("kept", 0)
	if err != nil {
		t.Fatalf("the kept replica did not reopen: %v", err)
	}
	if got, err := p.RaftApplied(); err != nil || got < before.Applied {
		t.Fatalf("the replica reopened applied to %d (%v), was %d: not from its own log", got, err, before.Applied)
	}
}

// TestClusterMovesPartitionBack (issue 13): a partition's replica is moved
// off a node and back while appends go on. The replica that returns is a
// new Raft member (a new placement in its replica id), not the old one
// with an empty log; the group's voters are the placement's, and every
// acknowledged record is on every replica at its offset.
func TestClusterMovesPartitionBack(t *testing.T) {
	tn := startNodes(t, 4)
	if _, err := tn.nodes[1].CreateTopicReplicated("back", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	first := replicaSet(t, tn.nodes[1], "back")
	var spare, leaving int32
	for id := range tn.nodes {
		if !slices.Contains(first, id) {
			spare = id
		}
	}
	leaving = first[0]
	// The node that created the topic applied its creation before the
	// call returned; waitMoved waits for every node to apply each move.
	mpOf := func() *metav1.Partition {
		for _, tp := range tn.nodes[1].ctl.State().Topics {
			if tp.Name == "back" {
				return tp.Partitions[0]
			}
		}
		t.Fatal("no topic back in the state")
		return nil
	}
	idOn := func(mp *metav1.Partition, node int32) uint64 {
		for _, r := range mp.Replicas {
			if meta.NodeOf(r) == node {
				return r
			}
		}
		return 0
	}
	before := idOn(mpOf(), leaving)

	a := startAppender(tn, "back")
	waitUntil(t, "a few appends before the moves", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 20 })
	away := slices.Sorted(slices.Values(append(slices.DeleteFunc(slices.Clone(first), func(n int32) bool { return n == leaving }), spare)))
	for _, target := range [][]int32{away, first} {
		ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
		_, err := tn.nodes[spare].Reassign(ctx, "back", 0, target)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		tn.waitMoved("back", target)
	}
	waitUntil(t, "appends after the moves", func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.acked) >= 60 })
	acked := a.finish(t)

	mp := mpOf()
	after := idOn(mp, leaving)
	if after == 0 || after == before || meta.NodeReplicaID(after) != meta.NodeReplicaID(before) {
		t.Fatalf("node %d's replica was %#x and is %#x after the move back, want a new placement on the same incarnation", leaving, before, after)
	}
	lead := tn.leader("back", 0)
	var voters []uint64
	waitUntil(t, "the leader's voters to be the placement's", func() bool {
		_ = tn.nodes[lead].sched.Do(mp.GroupId, func(r *replica.Replica) { voters = slices.Sorted(slices.Values(r.ConfState().GetVoters())) })
		return slices.Equal(voters, slices.Sorted(slices.Values(mp.Replicas)))
	})
	tn.checkHolds("back", lead, first, acked)
	t.Logf("node %d's replica %#x came back as %#x; %d acknowledged appends", leaving, before, after, len(acked))
}

// checkHolds waits until the replica of topic-0 on each of nodes is online
// and has applied all the leader has, then checks that it holds the
// leader's records, and that those hold every acknowledged append.
func (tn *testNodes) checkHolds(topic string, lead int32, nodes []int32, acked map[int64]string) {
	t := tn.t
	t.Helper()
	p, err := tn.nodes[lead].Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := records(t, p)
	for _, n := range nodes {
		var q *partition.Partition
		waitUntil(t, fmt.Sprintf("node %d's replica online and caught up", n), func() bool {
			var err error
			q, err = tn.nodes[n].Partition(topic, 0)
			return err == nil && q.Err() == nil && q.HighWatermark() >= p.HighWatermark()
		})
		if got := records(t, q); !slices.Equal(got, want) {
			t.Fatalf("node %d holds %d records, the leader %d", n, len(got), len(want))
		}
	}
	held := map[string]bool{}
	for _, r := range want {
		held[r] = true
	}
	for off, v := range acked {
		if !held[fmt.Sprintf("%d:%s", off, v)] {
			t.Fatalf("acknowledged %d:%s is not in the log", off, v)
		}
	}
}
