package raftlog

import (
	"io"
	"log"
	"math"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage/vfs"
)

// raftNode is one member of a test cluster: a RawNode whose storage is a
// Log, driven synchronously (persist, send, apply, advance).
type raftNode struct {
	id   uint64
	fsys vfs.FS
	log  *Log
	rn   *raft.RawNode
	conf *raftpb.ConfState
}

// raftCluster delivers messages between its nodes in one goroutine; an
// isolated node's messages are dropped both ways.
type raftCluster struct {
	t        *testing.T
	nodes    []*raftNode
	isolated map[uint64]bool
}

var quietRaft = &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}

func newRaftCluster(t *testing.T) *raftCluster {
	c := &raftCluster{t: t, isolated: map[uint64]bool{}}
	for id := uint64(1); id <= 3; id++ {
		fsys := vfs.NewMem()
		l, err := Create(fsys, "p", testCfg, Bootstrap{GroupID: 1, ReplicaID: id, Index: 1, Term: 1,
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := &raftNode{id: id, fsys: fsys, log: l}
		n.start(t)
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.log.Close()
		}
	})
	return c
}

// start makes the node's RawNode over its log, as a restart does.
func (n *raftNode) start(t *testing.T) {
	t.Helper()
	hs, cs, err := n.log.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	n.conf = cs
	n.rn, err = raft.NewRawNode(&raft.Config{ID: n.id, ElectionTick: 10, HeartbeatTick: 1, Storage: n.log,
		Applied: hs.GetCommit(), MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, Logger: quietRaft})
	if err != nil {
		t.Fatal(err)
	}
}

// settle runs every node's Ready loop and delivers messages until
// nothing is left to do.
func (c *raftCluster) settle() {
	c.t.Helper()
	for round := 0; ; round++ {
		if round == 1000 {
			c.t.Fatal("the cluster does not settle")
		}
		var msgs []*raftpb.Message
		for _, n := range c.nodes {
			if n.rn.HasReady() {
				msgs = append(msgs, n.handleReady(c.t)...)
			}
		}
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			if c.isolated[m.GetFrom()] || c.isolated[m.GetTo()] {
				continue
			}
			_ = c.nodes[m.GetTo()-1].rn.Step(m) // a stale message may be refused
		}
	}
}

// handleReady persists, applies and advances one Ready and returns the
// messages to send.
func (n *raftNode) handleReady(t *testing.T) []*raftpb.Message {
	t.Helper()
	rd := n.rn.Ready()
	if rd.HardState != nil {
		if err := n.log.SetHardState(rd.HardState); err != nil {
			t.Fatal(err)
		}
	}
	if len(rd.Entries) > 0 {
		if err := n.log.Append(rd.Entries, 0); err != nil {
			t.Fatalf("node %d: %v", n.id, err)
		}
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		t.Fatalf("node %d: snapshot %v", n.id, rd.Snapshot)
	}
	if err := n.log.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, e := range rd.CommittedEntries {
		var cc raftpb.ConfChangeI
		switch e.GetType() {
		case raftpb.EntryConfChange:
			v1 := &raftpb.ConfChange{}
			if err := proto.Unmarshal(e.GetData(), v1); err != nil {
				t.Fatal(err)
			}
			cc = v1
		case raftpb.EntryConfChangeV2:
			v2 := &raftpb.ConfChangeV2{}
			if err := proto.Unmarshal(e.GetData(), v2); err != nil {
				t.Fatal(err)
			}
			cc = v2
		}
		var conf *raftpb.ConfState
		if cc != nil {
			conf = n.rn.ApplyConfChange(cc)
			n.conf = conf
		}
		if err := n.log.RecordApplied(e.GetIndex(), conf); err != nil {
			t.Fatal(err)
		}
	}
	n.rn.Advance(rd)
	return rd.Messages
}

// propose has node n propose one batch stamped as a leader stamps it, at
// its log end with its term, and settles.
func (c *raftCluster) propose(n *raftNode) {
	c.t.Helper()
	last, _ := n.log.LastIndex()
	next, err := n.log.OffsetOf(last + 1)
	if err != nil {
		c.t.Fatal(err)
	}
	data := stampedBatch(c.t, next, spec{term: n.rn.BasicStatus().GetTerm(), records: 2, valueBytes: 10})
	if err := n.rn.Propose(data); err != nil {
		c.t.Fatal(err)
	}
	c.settle()
}

// TestRaftCluster drives three RawNodes over Logs through an election,
// proposals, a conf change raft refuses (an empty normal entry in the
// middle of a term), a partitioned leader whose uncommitted suffix a new
// leader overrides, and restarts; every log must end identical, entry
// for entry, to the others.
func TestRaftCluster(t *testing.T) {
	c := newRaftCluster(t)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	if err := n1.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	c.settle()
	for range 3 {
		c.propose(n1)
	}
	// The second conf change is refused while the first is pending.
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(3)}
	for range 2 {
		if err := n1.rn.ProposeConfChange(cc); err != nil {
			t.Fatal(err)
		}
	}
	c.settle()
	c.propose(n1)

	// Node 1 is cut off; what it appends now is never committed.
	c.isolated[1] = true
	c.propose(n1)
	c.propose(n1)
	stale, _ := n1.log.LastIndex()
	staleTerm, _ := n1.log.Term(stale)
	if err := n2.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.propose(n2)
	c.propose(n2)
	delete(c.isolated, 1)
	for range 3 {
		n2.rn.Tick()
		c.settle()
	}
	c.propose(n2)

	want := sameLogs(t, c)
	if term, _ := n1.log.Term(stale); term == staleTerm {
		t.Errorf("entry %d of node 1 still has the partitioned leader's term %d", stale, term)
	}
	noops := 0
	for _, e := range want {
		if e.GetType() == raftpb.EntryNormal && e.Type != nil && len(e.GetData()) == 0 {
			noops++
		}
	}
	if noops != 1 {
		t.Errorf("%d no-op entries in %s, want the refused conf change", noops, show(want))
	}

	// Restart every node on its reopened log; the cluster goes on.
	for _, n := range c.nodes {
		n.log.Close()
		var err error
		if n.log, err = Open(n.fsys, "p", testCfg, 0); err != nil {
			t.Fatal(err)
		}
		n.start(t)
	}
	if err := n3.rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.propose(n3)
	sameLogs(t, c)
}

// sameLogs checks that every node's log holds the same entries, all
// committed, and returns them.
func sameLogs(t *testing.T, c *raftCluster) []*raftpb.Entry {
	t.Helper()
	var want []*raftpb.Entry
	for _, n := range c.nodes {
		last, _ := n.log.LastIndex()
		got, err := n.log.Entries(2, last+1, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		if commit := n.rn.BasicStatus().GetCommit(); commit != last {
			t.Errorf("node %d: commit %d, last entry %d", n.id, commit, last)
		}
		if want == nil {
			want = got
		} else if !sameEntries(got, want) {
			t.Fatalf("node %d holds %s, node 1 %s", n.id, show(got), show(want))
		}
	}
	return want
}
