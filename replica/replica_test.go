package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3/raftpb"
)

// listSM records what it is told; PrepareProposal stamps the index.
type listSM struct {
	applied     []string
	leadership  []Leadership
	restores    int
	refuseNext  bool
	preparedAts []ProposalPoint
}

func (s *listSM) Apply(ents []*raftpb.Entry) error {
	for _, e := range ents {
		if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
			s.applied = append(s.applied, string(e.GetData()))
		}
	}
	return nil
}
func (s *listSM) LeadershipChanged(l Leadership) { s.leadership = append(s.leadership, l) }
func (s *listSM) Restore(*raftpb.Snapshot) error { s.restores++; return nil }
func (s *listSM) PrepareProposal(p *Proposal, at ProposalPoint) error {
	if s.refuseNext {
		s.refuseNext = false
		return errors.New("refused")
	}
	s.preparedAts = append(s.preparedAts, at)
	p.Data = fmt.Appendf(nil, "%s@%d", p.Data, at.Index)
	return nil
}

// trio is three replicas passing messages in FIFO order with syncs the test
// triggers: the smallest driver, to test the Replica without the simulator.
type trio struct {
	t        *testing.T
	reps     map[uint64]*Replica
	sms      map[uint64]*listSM
	stores   map[uint64]*MemStorage
	inflight []*raftpb.Message
	syncSeq  map[uint64]uint64
}

func newTrio(t *testing.T) *trio {
	tr := &trio{t: t, reps: map[uint64]*Replica{}, sms: map[uint64]*listSM{}, stores: map[uint64]*MemStorage{}, syncSeq: map[uint64]uint64{}}
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for id := uint64(1); id <= 3; id++ {
		tr.stores[id] = NewBootstrapStorage([]uint64{1, 2, 3})
		tr.sms[id] = &listSM{}
		r, err := New(e, Config{ID: id}, tr.stores[id], tr.sms[id])
		if err != nil {
			t.Fatal(err)
		}
		tr.reps[id] = r
	}
	return tr
}

// ready drains every replica's Ready, queueing messages and recording the
// sync each asks for.
func (tr *trio) ready() {
	for id := uint64(1); id <= 3; id++ {
		for tr.reps[id].HasReady() {
			w, err := tr.reps[id].HandleReady()
			if err != nil {
				tr.t.Fatal(err)
			}
			tr.inflight = append(tr.inflight, w.Messages...)
			tr.syncSeq[id] = max(tr.syncSeq[id], w.SyncSeq)
		}
	}
}

func (tr *trio) sync(id uint64) {
	if err := tr.stores[id].Sync(); err != nil {
		tr.t.Fatal(err)
	}
	msgs, err := tr.reps[id].Synced(tr.syncSeq[id])
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.inflight = append(tr.inflight, msgs...)
}

// deliver steps the messages in flight into their replicas (those of a
// replica the trio does not run are lost).
func (tr *trio) deliver() {
	msgs := tr.inflight
	tr.inflight = nil
	for _, m := range msgs {
		if r := tr.reps[m.GetTo()]; r != nil {
			if err := r.Step(m); err != nil {
				tr.t.Fatal(err)
			}
		}
	}
}

// settleTwo settles replicas 1 and 2 while 3 is out of the trio.
func (tr *trio) settleTwo() {
	for range 100 {
		for id := range tr.reps {
			for tr.reps[id].HasReady() {
				w, err := tr.reps[id].HandleReady()
				if err != nil {
					tr.t.Fatal(err)
				}
				tr.inflight = append(tr.inflight, w.Messages...)
				tr.syncSeq[id] = max(tr.syncSeq[id], w.SyncSeq)
			}
			tr.sync(id)
		}
		if len(tr.inflight) == 0 {
			return
		}
		tr.deliver()
	}
	tr.t.Fatal("no quiet after 100 rounds")
}

// settle delivers, syncs everyone and handles Readies until quiet.
func (tr *trio) settle() {
	for range 100 {
		tr.ready()
		for id := uint64(1); id <= 3; id++ {
			tr.sync(id)
		}
		tr.ready()
		if len(tr.inflight) == 0 {
			return
		}
		msgs := tr.inflight
		tr.inflight = nil
		for _, m := range msgs {
			if tr.reps[m.GetTo()] == nil {
				continue // a replica the trio does not run: lost
			}
			if err := tr.reps[m.GetTo()].Step(m); err != nil {
				tr.t.Fatal(err)
			}
		}
	}
	tr.t.Fatal("no quiet after 100 rounds")
}

// TestReplicaElectsAndReplicates: a campaign makes a leader that becomes
// ready only after applying its term's first entry; its proposals are
// stamped with the index they get and applied on every replica; followers
// refuse proposals.
func TestReplicaElectsAndReplicates(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	l := tr.reps[1].Leadership()
	if l.Leader != 1 || !l.Ready || l.Term != 1 {
		t.Fatalf("leadership after campaign %+v, want ready leader 1 in term 1", l)
	}
	if got := tr.sms[1].leadership; !slices.Contains(got, Leadership{Term: 1, Leader: 1}) {
		t.Fatalf("notifications %+v: no unready leader stage before ready", got)
	}
	if _, err := tr.reps[2].Propose(Proposal{Data: []byte("x")}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower Propose: %v, want ErrNotLeader", err)
	}
	for _, v := range []string{"a", "b"} {
		if _, err := tr.reps[1].Propose(Proposal{Data: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	tr.sms[1].refuseNext = true
	if _, err := tr.reps[1].Propose(Proposal{Data: []byte("c")}); err == nil {
		t.Fatal("Propose refused by PrepareProposal succeeded")
	}
	tr.settle()
	want := []string{"a@3", "b@4"} // 1 is the bootstrap snapshot, 2 the leader's empty entry
	for id, sm := range tr.sms {
		if !slices.Equal(sm.applied, want) {
			t.Errorf("replica %d applied %v, want %v", id, sm.applied, want)
		}
		if sm.restores != 1 {
			t.Errorf("replica %d restored %d times, want once (the bootstrap snapshot at open)", id, sm.restores)
		}
	}
}

// TestResponsesWaitForSync: the leader sends MsgApp at once, but neither
// its own acknowledgement nor a follower's counts before their syncs, so
// nothing commits until a quorum has synced.
func TestResponsesWaitForSync(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	if _, err := tr.reps[1].Propose(Proposal{Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	tr.ready()
	apps := 0
	for _, m := range tr.inflight {
		if m.GetType() == raftpb.MsgApp {
			apps++
		}
	}
	if apps != 2 {
		t.Fatalf("%d MsgApp out before the leader's sync, want 2", apps)
	}
	// Deliver to the followers without syncing anyone: no MsgAppResp comes back.
	msgs := tr.inflight
	tr.inflight = nil
	for _, m := range msgs {
		_ = tr.reps[m.GetTo()].Step(m)
	}
	tr.ready()
	for _, m := range tr.inflight {
		if m.GetType() == raftpb.MsgAppResp {
			t.Fatalf("MsgAppResp from %d before its sync", m.GetFrom())
		}
	}
	// Follower 2 syncs: with the leader's own write unsynced that is one
	// acknowledgement of three, and 2's alone cannot commit. The leader's sync
	// makes two.
	tr.sync(2)
	for _, m := range tr.inflight {
		_ = tr.reps[m.GetTo()].Step(m)
	}
	tr.inflight = nil
	tr.ready()
	if got := tr.sms[1].applied; len(got) != 0 {
		t.Fatalf("leader applied %v with only one durable copy", got)
	}
	tr.sync(1)
	tr.ready()
	if got := tr.sms[1].applied; !slices.Equal(got, []string{"a@3"}) {
		t.Fatalf("leader applied %v after a quorum synced, want [a@3]", got)
	}
}

// TestReplicaFailsOnSyncError: a failed sync stops the replica for good.
func TestReplicaFailsOnSyncError(t *testing.T) {
	tr := newTrio(t)
	tr.reps[3].SyncFailed(ErrSyncFailed)
	if err := tr.reps[3].Campaign(); !errors.Is(err, ErrFailed) || !errors.Is(err, ErrSyncFailed) {
		t.Fatalf("Campaign after a failed sync: %v", err)
	}
	if tr.reps[3].HasReady() {
		t.Fatal("a failed replica has work")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		fail bool
	}{
		{Config{ID: 1}, false},
		{Config{}, true},
		{Config{ID: 1, HeartbeatTick: 5, ElectionTick: 5}, true},
		{Config{ID: 1, MaxSizePerMsgBytes: 16 << 20, MaxInflightBytes: 1 << 20}, true},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if (err != nil) != tc.fail {
			t.Errorf("Validate(%+v) = %v, want failure %v", tc.cfg, err, tc.fail)
		}
	}
	d := Config{ID: 1}.WithDefaults()
	if d.HeartbeatTick != 2 || d.ElectionTick != 12 || d.MaxInflightMsgs != 64 {
		t.Errorf("defaults %+v", d)
	}
}
