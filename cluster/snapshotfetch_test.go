package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// leaderData is 30 one-record batches from offset 4, every third offset
// left out (compaction's gaps), and the snapshot's next offset after them.
func leaderData(t *testing.T) ([]byte, int64) {
	t.Helper()
	var out []byte
	offset := int64(4)
	for i := range 30 {
		if i%3 == 0 {
			offset++
		}
		b, err := batch.Encode(batch.Header{BaseOffset: offset, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, 0,
			[]batch.Record{{Offset: offset, Value: bytes.Repeat([]byte{byte(i)}, 100)}}, batch.None)
		if err != nil {
			t.Fatal(err)
		}
		out, offset = append(out, b...), offset+1
	}
	return out, offset + 2
}

// fakeLeader answers SnapshotReads from data as a leader's node does,
// handing the chunks to the fetcher; groups in silent get no answer, and
// changed answers SnapshotChanged.
type fakeLeader struct {
	t       *testing.T
	data    []byte
	next    int64
	fetcher *snapshotFetcher
	silent  map[uint64]bool
	changed bool
	mu      sync.Mutex
	reads   int
}

func (l *fakeLeader) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	req, err := transport.ParseSnapshotRead(payload)
	if err != nil || typ != transport.FrameSnapshotRead || to != 7 {
		l.t.Errorf("sent %v to %d: %v", typ, to, err)
		return err
	}
	l.mu.Lock()
	l.reads++
	silent, changed := l.silent[req.Group], l.changed
	l.mu.Unlock()
	if silent {
		return nil
	}
	c := answer(req, transport.SnapshotChanged)
	if !changed {
		c.Status = transport.SnapshotOK
		c.Batches, c.Next = leaderPiece(l.t, l.data, req.Offset, l.next, 700)
	}
	l.fetcher.handleChunk(7, transport.AppendSnapshotChunk(nil, c))
	return nil
}

// leaderPiece is the leader's answer to a read at offset: the batches from
// it within maxBytes (the first whole) and where the next read starts.
func leaderPiece(t *testing.T, data []byte, at, next int64, maxBytes int) ([]byte, int64) {
	var out []byte
	end := next
	for rest := data; len(rest) > 0; {
		h, whole, after, err := batch.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = after
		if h.BaseOffset < at {
			continue
		}
		if len(out) > 0 && len(out)+len(whole) > maxBytes {
			break
		}
		out, end = append(out, whole...), h.NextOffset()
	}
	if len(out) == 0 {
		return nil, next
	}
	return out, end
}

// fakeTarget is a replica of a group wanting a copy, its staging
// directory in fs, of every snapshot past the one it installed.
type fakeTarget struct {
	fs        vfs.FS
	dir       string
	installed *atomic.Uint64
}

func (t fakeTarget) SnapshotCopyWanted(snap *raftpb.Snapshot) (raftlog.StagedSnapshot, bool) {
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	md := snap.GetMetadata()
	return raftlog.StagedSnapshot{Index: md.GetIndex(), Term: md.GetTerm(), LogStartOffset: d.LogStartOffset, NextOffset: d.NextOffset},
		err == nil && md.GetIndex() > t.installed.Load()
}

func (t fakeTarget) OpenSnapshotCopy(s raftlog.StagedSnapshot) (*raftlog.Staging, error) {
	return raftlog.OpenStaging(t.fs, t.dir, s)
}

func groupDir(group uint64) string { return "/data/g" + string(rune('a'+group)) }

// snapMsg is the leader's MsgSnap of (index, term) for [4, next).
func snapMsg(index, term uint64, next int64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
		Snapshot: &raftpb.Snapshot{Data: raftlog.EncodeDescriptor(raftlog.Descriptor{LogStartOffset: 4, NextOffset: next}),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: &raftpb.ConfState{}}}}
}

// noReplicaGroup has no local replica to copy for.
const noReplicaGroup = 99

// dropTerm is the term of the snapshots the fake replicas' Raft drops.
var dropTerm atomic.Uint64

func newFetcherPair(t *testing.T, clock env.Clock) (*snapshotFetcher, *fakeLeader, chan *raftpb.Message, vfs.FS) {
	f, leader, delivered, fsys, _ := newFetcherInstalling(t, clock)
	return f, leader, delivered, fsys
}

// newFetcherInstalling is newFetcherPair whose replicas install each
// snapshot up to the index stored in installed; their Raft takes every
// snapshot delivered but one of the term in dropTerm (0: none).
func newFetcherInstalling(t *testing.T, clock env.Clock) (*snapshotFetcher, *fakeLeader, chan *raftpb.Message, vfs.FS, *atomic.Uint64) {
	data, next := leaderData(t)
	fsys := vfs.NewMem()
	installed := &atomic.Uint64{}
	dropTerm.Store(0)
	leader := &fakeLeader{t: t, data: data, next: next, silent: map[uint64]bool{}}
	delivered := make(chan *raftpb.Message, 16)
	f := newSnapshotFetcher(clock, slog.New(slog.DiscardHandler), leader,
		func(group uint64) snapshotTarget {
			if group == noReplicaGroup {
				return nil
			}
			return fakeTarget{fs: fsys, dir: groupDir(group), installed: installed}
		},
		func(group uint64, _ snapshotTarget, m *raftpb.Message) bool {
			delivered <- m
			return m.GetSnapshot().GetMetadata().GetTerm() != dropTerm.Load()
		}, snapshotReadTimeoutMax)
	leader.fetcher = f
	return f, leader, delivered, fsys, installed
}

// TestSnapshotFetcherCopiesThenDelivers: a MsgSnap with data below it is
// held, the data copied in pieces into the staging directory, marked
// complete, and then the MsgSnap delivered; other messages, a snapshot
// with no data below it and the metadata group's pass at once, and one with
// no local replica to copy for is dropped (never delivered uncopied).
func TestSnapshotFetcherCopiesThenDelivers(t *testing.T) {
	f, leader, delivered, fsys := newFetcherPair(t, env.RealClock())
	defer f.close()
	if f.intercept(7, 1, &raftpb.Message{Type: raftpb.MsgApp.Enum()}) {
		t.Fatal("an append was intercepted")
	}
	if f.intercept(7, 1, snapMsg(10, 2, 4)) {
		t.Fatal("a snapshot with no data below it was intercepted")
	}
	if f.intercept(7, controller.GroupID, snapMsg(10, 2, leader.next)) {
		t.Fatal("a snapshot of the metadata group was intercepted")
	}
	if !f.intercept(7, noReplicaGroup, snapMsg(10, 2, leader.next)) {
		t.Fatal("a snapshot for a group with no replica here went to the scheduler uncopied")
	}
	m := snapMsg(10, 2, leader.next)
	if !f.intercept(7, 1, m) {
		t.Fatal("the snapshot went to the replica before its data was copied")
	}
	select {
	case got := <-delivered:
		if got != m {
			t.Fatal("another message delivered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the snapshot was never delivered")
	}
	select {
	case got := <-delivered:
		t.Fatalf("delivered another snapshot at %d", got.GetSnapshot().GetMetadata().GetIndex())
	default:
	}
	s, err := raftlog.OpenStaging(fsys, groupDir(1), raftlog.StagedSnapshot{Index: 10, Term: 2, LogStartOffset: 4, NextOffset: leader.next})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Done() {
		t.Fatalf("staged copy reopens at %d, not complete", s.Next())
	}
	if leader.reads < 3 {
		t.Fatalf("%d reads: the copy was not made in pieces", leader.reads)
	}
}

// TestSnapshotFetcherKeepsADeliveredCopy: once a copy is delivered, a
// newer snapshot of its group is dropped, not copied, until the replica
// installed the delivered one: its copy would replace the staged data,
// and Raft installing the delivered snapshot after that would restart
// the log at its next offset without the data below (seed 1026 of
// TestSimulatedClusterCompacted: a replica's log start jumped from 20 to
// 166). Installed, the newer snapshot is copied and delivered.
func TestSnapshotFetcherKeepsADeliveredCopy(t *testing.T) {
	f, leader, delivered, fsys, installed := newFetcherInstalling(t, env.RealClock())
	defer f.close()
	await := func(want *raftpb.Message) {
		t.Helper()
		select {
		case got := <-delivered:
			if got != want {
				t.Fatalf("delivered the snapshot at %d, want %d", got.GetSnapshot().GetMetadata().GetIndex(), want.GetSnapshot().GetMetadata().GetIndex())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the snapshot at %d was never delivered", want.GetSnapshot().GetMetadata().GetIndex())
		}
	}
	first, newer := snapMsg(10, 2, leader.next), snapMsg(12, 2, leader.next)
	if !f.intercept(7, 1, first) {
		t.Fatal("the snapshot went to the replica before its data was copied")
	}
	await(first)
	if !f.intercept(7, 1, newer) {
		t.Fatal("a newer snapshot went to the replica uncopied")
	}
	readsNow := func() int {
		leader.mu.Lock()
		defer leader.mu.Unlock()
		return leader.reads
	}
	reads := readsNow()
	time.Sleep(3 * snapshotInstallPoll) // a copy started now would read and stage at once
	if n := readsNow(); n != reads {
		t.Fatalf("a copy of the newer snapshot began (%d reads) while the delivered one was not installed", n-reads)
	}
	s, err := raftlog.OpenStaging(fsys, groupDir(1), raftlog.StagedSnapshot{Index: 10, Term: 2, LogStartOffset: 4, NextOffset: leader.next, Sender: 7})
	if err != nil {
		t.Fatal(err)
	}
	done := s.Done()
	s.Close()
	if !done {
		t.Fatal("the delivered snapshot's staged copy was replaced before its install")
	}
	installed.Store(10)
	waitUntil(t, "the installed copy to be forgotten", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.copies[1] == nil
	})
	if !f.intercept(7, 1, newer) {
		t.Fatal("the newer snapshot went to the replica uncopied")
	}
	await(newer)

	// A snapshot Raft drops (of an older term than the replica's) ends
	// the wait at once: the next snapshot is copied.
	installed.Store(12)
	waitUntil(t, "the installed copy to be forgotten", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.copies[1] == nil
	})
	dropTerm.Store(3)
	stale := snapMsg(14, 3, leader.next)
	if !f.intercept(7, 1, stale) {
		t.Fatal("a snapshot went to the replica uncopied")
	}
	await(stale)
	waitUntil(t, "the dropped snapshot's copy to be forgotten", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.copies[1] == nil
	})
	later := snapMsg(16, 4, leader.next)
	if !f.intercept(7, 1, later) {
		t.Fatal("a later snapshot went to the replica uncopied")
	}
	await(later)
}

// TestSnapshotFetcherDropsAndStops: while a copy waits on a silent leader,
// the same snapshot again is dropped, another snapshot stops the copy
// (and is dropped), copies past the bound are dropped; a changed snapshot
// ends its copy undelivered; close stops what runs.
func TestSnapshotFetcherDropsAndStops(t *testing.T) {
	f, leader, delivered, _ := newFetcherPair(t, env.NewManualClock(time.Unix(0, 0)))
	for g := range uint64(snapshotCopiesMax + 1) {
		leader.silent[g+1] = true
	}
	for g := range uint64(snapshotCopiesMax + 1) {
		if !f.intercept(7, g+1, snapMsg(10, 2, leader.next)) {
			t.Fatalf("group %d: snapshot not taken", g+1)
		}
	}
	running := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.copies)
	}
	if n := running(); n != snapshotCopiesMax {
		t.Fatalf("%d copies run, want the bound %d", n, snapshotCopiesMax)
	}
	f.mu.Lock()
	first := f.copies[1]
	f.mu.Unlock()
	if !f.intercept(7, 1, snapMsg(10, 2, leader.next)) || running() != snapshotCopiesMax {
		t.Fatal("the same snapshot again was not dropped")
	}
	if !f.intercept(7, 1, snapMsg(12, 2, leader.next)) {
		t.Fatal("another snapshot went to the replica while a copy ran")
	}
	waitUntil(t, "the stopped copy to end", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.copies[1] != first
	})
	leader.mu.Lock()
	leader.changed = true
	delete(leader.silent, snapshotCopiesMax+2)
	leader.mu.Unlock()
	if !f.intercept(7, snapshotCopiesMax+2, snapMsg(10, 2, leader.next)) {
		t.Fatal("snapshot not taken")
	}
	waitUntil(t, "the changed snapshot's copy to end", func() bool { return running() == snapshotCopiesMax-1 })
	f.close()
	if n := running(); n != 0 {
		t.Fatalf("%d copies after close", n)
	}
	select {
	case m := <-delivered:
		t.Fatalf("delivered a snapshot at %d that was never copied", m.GetSnapshot().GetMetadata().GetIndex())
	default:
	}
}

// appendKeyed appends one keyed record and waits for acks=all.
func appendKeyed(t *testing.T, c *Cluster, topic, key, value string) {
	t.Helper()
	p, err := c.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(value)}}, batch.None))
	if err != nil {
		t.Fatalf("append on node %d: %v", c.NodeID(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatalf("append on node %d: %v", c.NodeID(), err)
	}
}

// snapshotOf is a replica's current Raft snapshot and its descriptor.
func snapshotOf(t *testing.T, p *partition.Partition) (*raftpb.Snapshot, raftlog.Descriptor) {
	t.Helper()
	snap, err := p.RaftStorage().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, err := raftlog.DecodeDescriptor(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	return snap, d
}

// TestClusterFollowerCopiesSnapshotData: three nodes, a compacted topic;
// one node is stopped while the others' cleaners compact past its log
// end. Restarted, it gets the leader's snapshot, copies the data below it
// from the leader's node, installs it and holds the same records at the
// same offsets as the leader, from the same log start.
func TestClusterFollowerCopiesSnapshotData(t *testing.T) {
	tn := startNodes(t, 3)
	via := tn.other(tn.controller())
	configs := map[string]string{"cleanup.policy": "compact", "segment.bytes": "300"}
	if _, err := tn.nodes[via].CreateTopicReplicated("keyed", 1, 3, configs, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("keyed", 0)
	appendKeyed(t, tn.nodes[lead], "keyed", "k0", "first")
	behind := tn.other(lead)
	bp, err := tn.nodes[behind].Partition("keyed", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the follower to apply the first record", func() bool { return bp.HighWatermark() >= 1 })
	tn.stop(behind)
	for i := range 60 {
		appendKeyed(t, tn.nodes[lead], "keyed", fmt.Sprint("k", i%4), fmt.Sprint("v", i))
	}
	for _, c := range tn.nodes {
		c.CleanOnce(time.Now().UnixMilli())
	}
	lp, err := tn.nodes[lead].Partition("keyed", 0)
	if err != nil {
		t.Fatal(err)
	}
	leaderSnap, ld := snapshotOf(t, lp)
	if ld.LogStartOffset >= ld.NextOffset || leaderSnap.GetMetadata().GetIndex() < 3 {
		t.Fatalf("leader's snapshot at %d holds [%d, %d): the cleaner compacted nothing to copy",
			leaderSnap.GetMetadata().GetIndex(), ld.LogStartOffset, ld.NextOffset)
	}
	want := records(t, lp)
	tn.restart(behind)
	bp, err = tn.nodes[behind].Partition("keyed", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restarted follower to catch up", func() bool { return bp.HighWatermark() >= lp.HighWatermark() })
	snap, d := snapshotOf(t, bp)
	if snap.GetMetadata().GetIndex() < leaderSnap.GetMetadata().GetIndex() || bp.LogStartOffset() >= d.NextOffset {
		t.Fatalf("follower's snapshot at %d, log from %d, snapshot's next offset %d: the data below was not installed",
			snap.GetMetadata().GetIndex(), bp.LogStartOffset(), d.NextOffset)
	}
	if bp.LogStartOffset() != lp.LogStartOffset() {
		t.Fatalf("follower's log starts at %d, the leader's at %d", bp.LogStartOffset(), lp.LogStartOffset())
	}
	if got := records(t, bp); !slices.Equal(got, want) {
		t.Fatalf("follower holds %v, the leader %v", got, want)
	}
}

// TestSnapshotReadTimeoutFor: a read's answer is waited for three
// election timeouts, within [100 ms, snapshotReadTimeoutMax].
func TestSnapshotReadTimeoutFor(t *testing.T) {
	for _, c := range []struct{ election, want time.Duration }{
		{600 * time.Millisecond, 1800 * time.Millisecond}, // the default 12 ticks of 50 ms
		{120 * time.Millisecond, 360 * time.Millisecond},  // the simulation's
		{10 * time.Millisecond, 100 * time.Millisecond},
		{10 * time.Second, snapshotReadTimeoutMax},
	} {
		if got := snapshotReadTimeoutFor(c.election); got != c.want {
			t.Errorf("election timeout %v: read timeout %v, want %v", c.election, got, c.want)
		}
	}
}

// TestClusterReplicaRestartsOnASnapshotWithoutItsCopy: a follower handed a
// snapshot with data below it and no copy staged (a copy replaced while its
// worker was held up) refuses the install and is recreated from its log,
// which kept every record: it catches up again, online, with no damage
// noted. A snapshot decided for a partition the node no longer runs is not
// stepped into the replica that replaced it.
func TestClusterReplicaRestartsOnASnapshotWithoutItsCopy(t *testing.T) {
	tn := startNodes(t, 3)
	via := tn.other(tn.controller())
	if _, err := tn.nodes[via].CreateTopicReplicated("t", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("t", 0)
	for i := range 5 {
		appendKeyed(t, tn.nodes[lead], "t", "k", fmt.Sprint("v", i))
	}
	behind := tn.other(lead)
	c := tn.nodes[behind]
	bp, err := c.Partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := tn.nodes[lead].Partition("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the follower to apply the records", func() bool { return bp.HighWatermark() >= lp.HighWatermark() })
	before := records(t, bp)
	tp, _ := c.Topic("t")
	group := tp.Partitions[0].Group
	var st raft.Status
	if err := c.sched.Do(group, func(r *replica.Replica) { st = r.Status() }); err != nil {
		t.Fatal(err)
	}
	term := st.GetTerm()
	index, next := st.GetCommit()+100, lp.HighWatermark()+50
	snap := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: proto.Uint64(st.ID), From: proto.Uint64(st.Lead), Term: proto.Uint64(term),
		Snapshot: &raftpb.Snapshot{Data: raftlog.EncodeDescriptor(raftlog.Descriptor{LogStartOffset: 0, NextOffset: next,
			Terms: []raftlog.TermStart{{Term: term, Index: index, Offset: next}}}),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: tn.groupConf(behind, "t")}}}
	if c.stepSnapshot(group, fakeTarget{}, snap) {
		t.Fatal("a snapshot decided for a partition this node does not run was stepped")
	}
	if !c.stepSnapshot(group, bp, snap) {
		t.Fatal("the follower's Raft did not take the snapshot")
	}
	appendKeyed(t, tn.nodes[lead], "t", "k", "after")
	waitUntil(t, "the recreated follower to catch up", func() bool {
		return bp.Err() == nil && bp.HighWatermark() == lp.HighWatermark()
	})
	if got := records(t, bp); !slices.Equal(got[:len(before)], before) || bp.LogStartOffset() != 0 {
		t.Fatalf("follower holds %v from %d, want %v first, from 0", got, bp.LogStartOffset(), before)
	}
	if c.hasDamaged() {
		t.Fatal("the refusal was taken for damage")
	}
}
