package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// TestReplicaSurvivesDiskFull: on a cluster node, a partition whose Raft
// log cannot be written for lack of space refuses produces with
// ErrDiskFull; its replica is recreated from the log, and once space
// returns it leads and takes appends again, with nothing acknowledged lost.
func TestReplicaSurvivesDiskFull(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	addrs := freeLoopbackAddrs(t, 1)
	tn := &testNodes{t: t, peers: map[int32]string{1: addrs[0]}, fs: map[int32]vfs.FS{1: efs},
		nodes: map[int32]*Cluster{}, kafkaPort: map[int32]int{1: 19091}}
	c, err := tn.open(1)
	if err != nil {
		t.Fatal(err)
	}
	tn.nodes[1] = c
	t.Cleanup(func() { tn.stop(1) })
	if _, err := c.CreateTopicReplicated("full", 1, -1, nil, false); err != nil {
		t.Fatal(err)
	}
	tn.leader("full", 0)
	want := []string{fmt.Sprintf("%d:a", appendAll(t, c, "full", 0, "a").BaseOffset)}

	// Only the partition's active segment is out of space.
	remove := efs.Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: "full-0/00000000000000000000.log", Err: syscall.ENOSPC})
	if err := appendWait(c, "full", 0, "lost"); !errors.Is(err, partition.ErrDiskFull) {
		t.Fatalf("produce on a full disk: %v", err)
	}
	// The replica is recreated, with backoff, while the disk stays full:
	// every produce meanwhile fails, with the same clear error but in the
	// moment the recreated replica is elected (ErrNotLeader, retriable).
	for range 3 {
		if err := appendWait(c, "full", 0, "lost"); !errors.Is(err, partition.ErrDiskFull) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("produce on a still full disk: %v", err)
		}
	}
	remove()
	waitUntil(t, "the partition taking appends again", func() bool {
		return appendWait(c, "full", 0, "b") == nil
	})
	p, err := c.Partition("full", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := records(t, p)
	if !slices.Equal(got[:1], want) || got[len(got)-1] != fmt.Sprintf("%d:b", len(got)-1) {
		t.Fatalf("records after the disk was full: %v", got)
	}
	for _, r := range got[1:] {
		if r[len(r)-1] != 'b' {
			t.Fatalf("a refused produce was kept: %v", got)
		}
	}
}

// appendWait appends one record and waits for acks=all.
func appendWait(c *Cluster, topic string, index int32, value string) error {
	p, err := c.Partition(topic, index)
	if err != nil {
		return err
	}
	res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte(value)}}, batch.None))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	return p.WaitAppended(ctx, res, true)
}

// TestLeaderSurvivesDiskFull: three replicas; the leader's disk fills. Its
// produce fails with ErrDiskFull, another replica leads and takes appends,
// and once space returns the recreated replica catches up: every node
// holds the same log, with every acknowledged record.
func TestLeaderSurvivesDiskFull(t *testing.T) {
	tn, lead := fullTopicNodes(t)

	remove := tn.fillDisk(lead)
	if err := appendWait(tn.nodes[lead], "full", 0, "refused"); !errors.Is(err, partition.ErrDiskFull) {
		t.Fatalf("produce on the leader's full disk: %v", err)
	}
	next := tn.waitAppendsElsewhere(lead, "b")
	remove()
	appendAll(t, tn.nodes[next], "full", 0, "c")
	p, err := tn.nodes[next].Partition("full", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The refused batch reached the followers before the leader's own write
	// failed, so a new leader may have committed it, as after any failover.
	want := records(t, p)
	if got := valuesOf(want); !slices.Equal(got, []string{"a", "b", "c"}) && !slices.Equal(got, []string{"a", "refused", "b", "c"}) {
		t.Fatalf("the new leader holds %v", want)
	}
	tn.waitReplicated("full", 0, want)
}

// valuesOf drops the offsets of records' offset:value strings.
func valuesOf(recs []string) []string {
	var out []string
	for _, r := range recs {
		_, v, _ := strings.Cut(r, ":")
		out = append(out, v)
	}
	return out
}

// TestFullReplicaHandsOffLeadership: the replica of a node whose disk
// filled, recreated and elected again with a log as long as the others'
// (the refused entry never left it: the other nodes were down), hands the
// leadership to an in-sync follower, so produce goes on elsewhere. It
// would otherwise lead on, refusing every produce, until a produce to it
// failed again (TestLeaderSurvivesDiskFull timed out so, now and then).
func TestFullReplicaHandsOffLeadership(t *testing.T) {
	tn, lead := fullTopicNodes(t)
	electFullReplica(tn, lead)
	tn.waitAppendsElsewhere(lead, "b")
}

// TestFullReplicaAsksAgainWhenAHandOffFails: raft drops a transfer its
// target did not take within an election timeout. Here the message that
// tells the target to campaign is lost; the replica that won with a full
// disk still leads in that term, and asks again, so produce goes on
// elsewhere rather than waiting on a replica that refuses it.
func TestFullReplicaAsksAgainWhenAHandOffFails(t *testing.T) {
	var losers [4]timeoutNowLoser
	tn, lead := fullTopicNodesOf(t, func(c *Config) {
		loser := &losers[c.NodeID]
		c.Transport = func(e env.Env, cfg transport.Config) (Transport, error) {
			tcp, err := transport.New(e, cfg)
			if err != nil {
				return nil, err
			}
			loser.Transport = tcp
			return loser, nil
		}
	})
	slot, ok := tn.nodes[lead].Topic("full")
	if !ok {
		t.Fatal("topic full unknown")
	}
	losers[lead].group.Store(slot.Partitions[0].Group)
	losers[lead].lose.Store(1)
	electFullReplica(tn, lead)
	tn.waitAppendsElsewhere(lead, "b")
	if n := losers[lead].lose.Load(); n > 0 {
		t.Fatalf("the full replica's transfer was never asked (%d messages left to lose)", n)
	}
}

// electFullReplica fills node lead's disk while the others are down, so
// that its replica of full-0 fails a write and is recreated with a log as
// long as theirs, then brings them back and waits until that replica is
// elected.
func electFullReplica(tn *testNodes, lead int32) {
	t := tn.t
	t.Helper()
	others := []int32{lead%3 + 1, (lead+1)%3 + 1}
	for _, id := range others {
		tn.stop(id)
	}
	t.Cleanup(tn.fillDisk(lead))
	if err := appendWait(tn.nodes[lead], "full", 0, "refused"); !errors.Is(err, partition.ErrDiskFull) {
		t.Fatalf("produce on the leader's full disk: %v", err)
	}
	won := tn.nodes[lead].Stats().ElectionsWon // it may win at once, as the others come back
	for _, id := range others {
		tn.restart(id)
	}
	full := tn.localReplicaOf(lead, "full")
	asked := time.Time{}
	waitUntil(t, "the full node's replica elected", func() bool {
		if tn.nodes[lead].Stats().ElectionsWon > won {
			return true
		}
		if time.Since(asked) < time.Second {
			return false // asked once a second: asking again once it handed over would move it back
		}
		for id, c := range tn.nodes {
			if l, err := c.Leader("full", 0); id != lead && err == nil && l.Local {
				slot, _ := c.Topic("full")
				_ = c.sched.Do(slot.Partitions[0].Group, func(r *replica.Replica) { r.TransferLeader(full) })
				asked = time.Now()
			}
		}
		return false
	})
}

// timeoutNowLoser is a node's transport that loses the next lose
// MsgTimeoutNow messages of group, the message by which a leader tells the
// target of a transfer to campaign.
type timeoutNowLoser struct {
	Transport
	group atomic.Uint64
	lose  atomic.Int32
}

func (l *timeoutNowLoser) Send(to, group uint64, msgs []*raftpb.Message) {
	if group == l.group.Load() {
		msgs = slices.DeleteFunc(slices.Clone(msgs), func(m *raftpb.Message) bool {
			return m.GetType() == raftpb.MsgTimeoutNow && l.lose.Add(-1) >= 0
		})
		if len(msgs) == 0 {
			return
		}
	}
	l.Transport.Send(to, group, msgs)
}

// TestFullReplicasDoNotPassLeadershipRound: when every replica's disk
// filled (they hold the same data) and space returned, each recreated
// replica is elected before writing a record batch again; each hands
// the leadership over once, not at every election, or an idle partition
// would pass it round among them without end.
func TestFullReplicasDoNotPassLeadershipRound(t *testing.T) {
	tn, lead := fullTopicNodes(t)
	recovering := func(id int32) bool {
		p, err := tn.nodes[id].Partition("full", 0)
		return err == nil && p.DiskFullRecovering()
	}
	// The followers' disks fill first: they fail writing the leader's next
	// entry, which the leader holds; then the leader's, at its next entry.
	var removes []func()
	for id := range tn.nodes {
		if id != lead {
			removes = append(removes, tn.fillDisk(id))
		}
	}
	p, err := tn.nodes[lead].Partition("full", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("x")}}, batch.None)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the followers out of space", func() bool {
		for id := range tn.nodes {
			if id != lead && !recovering(id) {
				return false
			}
		}
		return true
	})
	removes = append(removes, tn.fillDisk(lead))
	waitUntil(t, "the leader out of space", func() bool {
		for id, c := range tn.nodes {
			if l, err := c.Leader("full", 0); err == nil && l.Local && !recovering(id) {
				_ = appendWait(c, "full", 0, "y")
			}
		}
		return recovering(1) && recovering(2) && recovering(3)
	})
	for _, remove := range removes {
		remove()
	}
	wonSince := func() uint64 {
		var n uint64
		for _, c := range tn.nodes {
			n += c.Stats().ElectionsWon
		}
		return n
	}
	before := wonSince()
	time.Sleep(2 * time.Second) // idle: a round would elect hundreds of times meanwhile
	if n := wonSince() - before; n > 6 {
		t.Fatalf("%d elections won in 2 s on an idle partition after the disks had space again", n)
	}
	tn.waitAppendsElsewhere(0, "b")
}

// fullTopicNodes starts three nodes and a topic "full" of one partition on
// all of them, holding one record, and returns them and its leader.
func fullTopicNodes(t *testing.T) (*testNodes, int32) {
	t.Helper()
	return fullTopicNodesOf(t, nil)
}

// fullTopicNodesOf is fullTopicNodes with edit changing every node's
// config.
func fullTopicNodesOf(t *testing.T, edit func(*Config)) (*testNodes, int32) {
	t.Helper()
	tn := startNodesOf(&testNodes{t: t, faulty: true, edit: edit}, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("full", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("full", 0)
	appendAll(t, tn.nodes[lead], "full", 0, "a")
	return tn, lead
}

// fillDisk makes writes to node id's first segment of full-0 fail for
// lack of space until the returned function is called.
func (tn *testNodes) fillDisk(id int32) func() {
	return tn.fs[id].(*vfs.ErrorFS).Inject(vfs.Rule{Op: vfs.OpWrite, PathContains: "full-0/00000000000000000000.log", Err: syscall.ENOSPC})
}

// waitAppendsElsewhere waits until a node other than except (0: any)
// takes an append of value to full-0 with acks=all, and returns it.
func (tn *testNodes) waitAppendsElsewhere(except int32, value string) int32 {
	tn.t.Helper()
	var took int32
	waitUntil(tn.t, "another replica taking appends", func() bool {
		for id, c := range tn.nodes {
			if id != except && appendWait(c, "full", 0, value) == nil {
				took = id
				return true
			}
		}
		return false
	})
	return took
}
