package raftlog

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

// The adapter is what the replica driver persists through.
var _ replica.Storage = (*RaftStorage)(nil)

// batchSM is a partition-like state machine for the replica tests: a
// proposal becomes a one-record batch stamped at the leader's log end with
// the term as epoch; it counts the restores and keeps the state data the
// last one carried.
type batchSM struct {
	t         *testing.T
	log       *Log
	applied   int
	restores  int
	stateData []byte
}

func (s *batchSM) Apply(ents []*raftpb.Entry) error {
	for _, e := range ents {
		if len(e.GetData()) > 0 && e.GetType() == raftpb.EntryNormal {
			s.applied++
		}
	}
	return nil
}

func (s *batchSM) LeadershipChanged(replica.Leadership) {}

func (s *batchSM) PrepareProposal(p *replica.Proposal, at replica.ProposalPoint) error {
	base, err := s.log.OffsetOf(at.Index)
	if err != nil {
		return err
	}
	p.Data, err = stampedBatchErr(base, spec{term: at.Term, records: 1 + int(at.Index%3), valueBytes: 40})
	return err
}

func (s *batchSM) Restore(snap *raftpb.Snapshot) error {
	d, err := DecodeDescriptor(snap.GetData())
	if err != nil {
		return err
	}
	s.restores++
	s.stateData = d.StateData
	return nil
}

// replicaNode is one member: its directory's log, the adapter, the driver.
type replicaNode struct {
	id  uint64
	fs  vfs.FS
	log *Log
	rep *replica.Replica
	sm  *batchSM
}

// replicaGroup passes messages between members in FIFO order, dropping
// those to or from a cut-off member, and syncs every write at once.
type replicaGroup struct {
	t       *testing.T
	nodes   []*replicaNode
	cut     map[uint64]bool
	pending []*raftpb.Message
}

func newReplicaGroup(t *testing.T) *replicaGroup {
	g := &replicaGroup{t: t, cut: map[uint64]bool{}}
	for _, id := range testBoot.ConfState.Voters {
		fsys := vfs.NewMem()
		boot := testBoot
		boot.ReplicaID = id
		l, err := Create(fsys, "p", testCfg, boot, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := &replicaNode{id: id, fs: fsys, log: l}
		n.start(t)
		g.nodes = append(g.nodes, n)
	}
	return g
}

func (n *replicaNode) start(t *testing.T) {
	t.Helper()
	n.sm = &batchSM{t: t, log: n.log}
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	hs, _, err := n.log.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replica.New(e, replica.Config{ID: n.id, GroupID: testBoot.GroupID, Applied: hs.GetCommit()},
		n.log.Storage(func() int64 { return 0 }), n.sm)
	if err != nil {
		t.Fatal(err)
	}
	n.rep = rep
}

// settle runs every member's ready work and delivers messages until
// nothing is left.
func (g *replicaGroup) settle() {
	g.t.Helper()
	for range 1000 {
		busy := false
		for _, n := range g.nodes {
			busy = g.handle(n) || busy
		}
		msgs := g.pending
		g.pending = nil
		for _, m := range msgs {
			if g.cut[m.GetFrom()] || g.cut[m.GetTo()] {
				continue
			}
			busy = true
			if err := g.node(m.GetTo()).rep.Step(m); err != nil {
				g.t.Fatalf("step %s to %x: %v", m.GetType(), m.GetTo(), err)
			}
		}
		if !busy {
			return
		}
	}
	g.t.Fatal("the group never settled")
}

// handle runs n's ready work, syncing its writes, and records its
// applied index in the log.
func (g *replicaGroup) handle(n *replicaNode) bool {
	g.t.Helper()
	busy := false
	for n.rep.HasReady() {
		busy = true
		w, err := n.rep.HandleReady()
		if err != nil {
			g.t.Fatalf("replica %x: %v", n.id, err)
		}
		g.pending = append(g.pending, w.Messages...)
		if w.SyncSeq != 0 {
			if err := n.log.Sync(); err != nil {
				g.t.Fatal(err)
			}
			msgs, err := n.rep.Synced(w.SyncSeq)
			if err != nil {
				g.t.Fatalf("replica %x: %v", n.id, err)
			}
			g.pending = append(g.pending, msgs...)
		}
	}
	if err := n.log.RecordApplied(n.rep.Applied(), nil); err != nil {
		g.t.Fatalf("replica %x: %v", n.id, err)
	}
	return busy
}

func (g *replicaGroup) node(id uint64) *replicaNode {
	for _, n := range g.nodes {
		if n.id == id {
			return n
		}
	}
	g.t.Fatalf("no replica %x", id)
	return nil
}

func (g *replicaGroup) propose(n *replicaNode, count int) {
	g.t.Helper()
	for range count {
		if _, err := n.rep.Propose(replica.Proposal{}); err != nil {
			g.t.Fatal(err)
		}
		g.settle()
	}
}

// tail returns n's entries from index from to its last, with the offset
// after them.
func (g *replicaGroup) tail(n *replicaNode, from uint64) ([]*raftpb.Entry, int64) {
	g.t.Helper()
	last, _ := n.log.LastIndex()
	ents, err := n.log.Entries(from, last+1, 1<<30)
	if err != nil {
		g.t.Fatalf("replica %x: entries [%d, %d]: %v", n.id, from, last, err)
	}
	end, err := n.log.OffsetOf(last + 1)
	if err != nil {
		g.t.Fatal(err)
	}
	return ents, end
}

// TestReplicaOverLog runs three replica drivers over Logs through their
// adapters: an election, replicated batches, a member cut off while the
// leader compacts past it, so that it catches up by an installed snapshot
// (the descriptor carries the state data and the next offset its
// segments restart at), more batches, and a restart of that member on its
// reopened log. Every log ends with the same entries at the same offsets.
func TestReplicaOverLog(t *testing.T) {
	g := newReplicaGroup(t)
	leader, lagging := g.nodes[0], g.nodes[2]
	if err := leader.rep.Campaign(); err != nil {
		t.Fatal(err)
	}
	g.settle()
	if lead := leader.rep.Leadership(); lead.Leader != leader.id || !lead.Ready {
		t.Fatalf("leadership %+v after the campaign", lead)
	}
	g.propose(leader, 5)
	g.cut[lagging.id] = true
	g.propose(leader, 6)
	applied := leader.rep.Applied()
	leader.log.SetSnapshotData(func(index uint64) ([]byte, error) { return fmt.Appendf(nil, "state@%d", index), nil })
	if err := leader.log.Compact(applied, nil); err != nil {
		t.Fatal(err)
	}
	delete(g.cut, lagging.id)
	g.propose(leader, 3)
	if lagging.sm.restores != 1 || string(lagging.sm.stateData) != fmt.Sprintf("state@%d", applied) {
		t.Fatalf("the lagging member restored %d snapshots, state %q; want 1 at %d", lagging.sm.restores, lagging.sm.stateData, applied)
	}
	snapNext, err := leader.log.OffsetOf(applied + 1)
	if err != nil {
		t.Fatal(err)
	}
	if start := lagging.log.storage.StartOffset(); start != snapNext {
		t.Fatalf("the lagging member's segments start at %d, want the snapshot's next offset %d", start, snapNext)
	}
	want, wantEnd := g.tail(leader, applied+1)
	for _, n := range g.nodes {
		if got, end := g.tail(n, applied+1); !sameEntries(got, want) || end != wantEnd {
			t.Fatalf("replica %x: %s ending at %d, want %s ending at %d", n.id, show(got), end, show(want), wantEnd)
		}
	}
	if err := lagging.log.Close(); err != nil {
		t.Fatal(err)
	}
	if lagging.log, err = Open(lagging.fs, "p", testCfg, 0); err != nil {
		t.Fatal(err)
	}
	lagging.start(t)
	g.propose(leader, 2)
	want, wantEnd = g.tail(leader, applied+1)
	for _, n := range g.nodes {
		if got, end := g.tail(n, applied+1); !sameEntries(got, want) || end != wantEnd {
			t.Fatalf("after the restart, replica %x: %s ending at %d, want %s ending at %d", n.id, show(got), end, show(want), wantEnd)
		}
	}
	if !slices.Equal([]int{leader.sm.applied, g.nodes[1].sm.applied}, []int{16, 16}) {
		t.Errorf("applied batches %d, %d; want 16 each", leader.sm.applied, g.nodes[1].sm.applied)
	}
}
