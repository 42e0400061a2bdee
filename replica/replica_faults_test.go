package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/env"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// TestStepRefusesLocalOnlyMessages: a proposal, or any other message only
// the replica itself makes, arriving from the network is refused, so the
// leader's log holds only what Propose accepted and Propose's index is the
// one its entry gets. Messages not addressed to this replica, or claiming
// to come from it or from nobody, are refused too; one from outside the
// configuration is counted.
func TestStepRefusesLocalOnlyMessages(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	injected := []*raftpb.Message{
		{Type: raftpb.MsgProp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Entries: []*raftpb.Entry{{Data: []byte("injected")}}},
		{Type: raftpb.MsgForgetLeader.Enum(), From: new(uint64(2)), To: new(uint64(1))},
		{Type: raftpb.MsgHup.Enum(), From: new(uint64(2)), To: new(uint64(1))},
		{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(3)), Term: new(uint64(1))},
		{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(1)), Term: new(uint64(1))},
		{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(0)), To: new(uint64(1)), Term: new(uint64(1))},
	}
	for _, m := range injected {
		if err := tr.reps[1].Step(m); err == nil {
			t.Errorf("Step(%s from %d to %d) accepted", m.GetType(), m.GetFrom(), m.GetTo())
		}
	}
	// No HandleReady in between, as in a worker's turn: messages, then calls.
	at, err := tr.reps[1].Propose(Proposal{Data: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	tr.settle()
	if n := tr.reps[1].Strangers(); n != 0 {
		t.Errorf("%d messages from strangers among members' messages", n)
	}
	stranger := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(9)), To: new(uint64(1)), Term: new(uint64(1))}
	if err := tr.reps[1].Step(stranger); err != nil {
		t.Fatal(err)
	}
	if n := tr.reps[1].Strangers(); n != 1 {
		t.Errorf("a heartbeat from 9, outside the configuration, counted %d times, want once", n)
	}
	ents, err := tr.stores[1].Entries(at.Index, at.Index+1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("a@%d", at.Index); len(ents) != 1 || string(ents[0].GetData()) != want {
		t.Fatalf("entry at the proposal's index %d is %v, want %q", at.Index, ents, want)
	}
	if got := tr.sms[2].applied; len(got) != 1 || got[0] != fmt.Sprintf("a@%d", at.Index) {
		t.Fatalf("follower applied %v, want only the proposal", got)
	}
}

// TestConfChangeOneAtATime: a second change proposed before the first is
// applied is refused with ErrConfChangePending (raft would have replaced
// it by an empty entry) and accepted once the first is applied; a change
// raft refuses in a joint configuration is refused too.
func TestConfChangeOneAtATime(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	change := func(s string, explicit bool) error {
		ccs, err := raftpb.ConfChangesFromString(s)
		if err != nil {
			t.Fatal(err)
		}
		cc := &raftpb.ConfChangeV2{Changes: ccs}
		if explicit {
			cc.Transition = raftpb.ConfChangeTransition_ConfChangeTransitionJointExplicit.Enum()
		}
		return tr.reps[1].ProposeConfChange(cc)
	}
	if err := change("l4", false); err != nil {
		t.Fatal(err)
	}
	if err := change("l5", false); !errors.Is(err, ErrConfChangePending) {
		t.Fatalf("second change before the first applied: %v, want ErrConfChangePending", err)
	}
	tr.settle()
	if err := change("l5", false); err != nil {
		t.Fatalf("change after the first applied: %v", err)
	}
	tr.settle()
	if got := tr.reps[1].ConfState().GetLearners(); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("learners %v, want [4 5]", got)
	}
	if err := change("", false); !errors.Is(err, ErrConfChangeRefused) {
		t.Fatalf("leaving a joint configuration not entered: %v, want ErrConfChangeRefused", err)
	}
	if err := change("r5", true); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	if err := change("r4", false); !errors.Is(err, ErrConfChangeRefused) {
		t.Fatalf("a change inside a joint configuration: %v, want ErrConfChangeRefused", err)
	}
	if err := change("", false); err != nil {
		t.Fatalf("leaving the joint configuration: %v", err)
	}
}

// appendFailer fails Append once armed, as a full disk would.
type appendFailer struct {
	*MemStorage
	fail bool
}

func (s *appendFailer) Append(ents []*raftpb.Entry) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.MemStorage.Append(ents)
}

// TestHandleReadyStopsAtWriteError: when the write of a Ready fails, the
// entries the same Ready commits are not applied: the replica stops at
// the first error.
func TestHandleReadyStopsAtWriteError(t *testing.T) {
	tr := newTrio(t)
	st := &appendFailer{MemStorage: tr.stores[1]}
	r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 1}, st, tr.sms[1])
	if err != nil {
		t.Fatal(err)
	}
	tr.reps[1] = r
	if err := r.Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	if _, err := r.Propose(Proposal{Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	// Replicate a and bring the acknowledgements back to the leader, but
	// stop before the leader's HandleReady that would apply it.
	tr.ready()
	tr.sync(1)
	msgs := tr.inflight
	tr.inflight = nil
	for _, m := range msgs {
		if err := tr.reps[m.GetTo()].Step(m); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(2); id <= 3; id++ {
		tr.ready()
		tr.sync(id)
	}
	if len(tr.inflight) == 0 {
		t.Fatal("no acknowledgements for the leader")
	}
	for _, m := range tr.inflight {
		if m.GetTo() == 1 {
			if err := r.Step(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := r.Propose(Proposal{Data: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	st.fail = true
	if _, err := r.HandleReady(); !errors.Is(err, ErrFailed) {
		t.Fatalf("HandleReady with a failing append: %v, want ErrFailed", err)
	}
	if got := tr.sms[1].applied; len(got) != 0 {
		t.Fatalf("a failed replica applied %v", got)
	}
}

// TestSnapshotRestoredOnlyOnceDurable: a follower sent a snapshot writes
// it at once but restores its state machine only when the sync covering
// the write is released. A crash in between loses the snapshot and leaves
// the state machine where it was, so a restart over the storage with the
// state machine's applied index works (restored early, its applied index
// would be past the log).
func TestSnapshotRestoredOnlyOnceDurable(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	down := tr.reps[3]
	delete(tr.reps, 3) // messages to 3 are lost
	for _, v := range []string{"a", "b"} {
		if _, err := tr.reps[1].Propose(Proposal{Data: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		tr.settleTwo()
	}
	applied := tr.reps[1].Applied()
	if err := tr.stores[1].CreateSnapshot(applied, tr.reps[1].ConfState(), nil); err != nil {
		t.Fatal(err)
	}
	tr.reps[3] = down
	restores, before := tr.sms[3].restores, down.Applied()
	var snap *raftpb.Message
	for range 20 {
		tr.reps[1].Tick()
		tr.ready()
		for id := range tr.reps {
			tr.sync(id)
		}
		for _, m := range tr.inflight {
			if m.GetTo() == 3 && m.GetType() == raftpb.MsgSnap {
				snap = m
			}
		}
		if snap != nil {
			break
		}
		tr.deliver()
	}
	if snap == nil {
		t.Fatal("no snapshot for 3 after 20 ticks")
	}
	tr.inflight = nil
	if err := down.Step(snap); err != nil {
		t.Fatal(err)
	}
	w, err := down.HandleReady()
	if err != nil {
		t.Fatal(err)
	}
	if tr.sms[3].restores != restores || down.Applied() != before {
		t.Fatalf("restored (%d restores, applied %d) before the snapshot's write was synced", tr.sms[3].restores-restores, down.Applied())
	}

	// Crash: the snapshot is lost; the state machine did not move.
	tr.stores[3].Crash()
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := New(e, Config{ID: 3, Applied: down.Applied()}, tr.stores[3], &listSM{}); err != nil {
		t.Fatalf("restart after the crash: %v", err)
	}

	// Without the crash, the sync releases the restore.
	if err := tr.stores[3].ApplySnapshot(snap.GetSnapshot()); err != nil {
		t.Fatal(err)
	}
	if err := tr.stores[3].Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := down.Synced(w.SyncSeq); err != nil {
		t.Fatal(err)
	}
	if tr.sms[3].restores != restores+1 || down.Applied() != applied {
		t.Fatalf("after the sync: %d restores, applied %d; want one, at %d", tr.sms[3].restores-restores, down.Applied(), applied)
	}
}

// TestNewChecksApplied: an applied index past the commit index (a state
// machine ahead of its log) is an error from New, not a raft panic.
func TestNewChecksApplied(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	hs, _, err := tr.stores[1].InitialState()
	if err != nil {
		t.Fatal(err)
	}
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := New(e, Config{ID: 1, Applied: hs.GetCommit()}, tr.stores[1], &listSM{}); err != nil {
		t.Fatalf("applied at the commit index %d: %v", hs.GetCommit(), err)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("applied past the commit index panicked: %v", p)
			}
		}()
		if _, err := New(e, Config{ID: 1, Applied: hs.GetCommit() + 1}, tr.stores[1], &listSM{}); err == nil {
			t.Fatalf("applied %d past the commit index %d accepted", hs.GetCommit()+1, hs.GetCommit())
		}
	}()
}

// TestRestartAtAppliedKeepsItsConfState: a replica reopened with
// Config.Applied past a configuration change starts in the configuration
// the storage recorded as of applied, not the snapshot's, since raft
// re-applies only the changes after applied.
func TestRestartAtAppliedKeepsItsConfState(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	ccs, err := raftpb.ConfChangesFromString("l4")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.reps[1].ProposeConfChange(&raftpb.ConfChangeV2{Changes: ccs}); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	st, applied := tr.stores[2], tr.reps[2].Applied()
	if err := st.RecordApplied(applied, tr.reps[2].ConfState()); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r, err := New(e, Config{ID: 2, Applied: applied}, st, &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ConfState().GetLearners(); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("reopened at %d with learners %v, want [4]", applied, got)
	}
	if got := r.Status().Config.Learners; len(got) != 1 {
		t.Fatalf("raft's configuration has learners %v, want 4", got)
	}
}

// lossSM is a listSM told of a lost log.
type lossSM struct {
	listSM
	lost error
}

func (s *lossSM) LogLost(err error) { s.lost = err }

// TestHeartbeatPastTheLogFailsTheReplica: a follower whose log lost
// entries it had acknowledged (storage damage taken for a torn tail at
// open) hears the leader commit past its last entry on a heartbeat. Raft
// would panic ("tocommit out of range"), taking the node's every group
// down; the replica fails with ErrLogLost instead and its state machine is
// told. A heartbeat of an older term committing as far is not checked
// (raft ignores it).
func TestHeartbeatPastTheLogFailsTheReplica(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	sm := &lossSM{}
	r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 2}, tr.stores[2], sm)
	if err != nil {
		t.Fatal(err)
	}
	last, err := tr.stores[2].LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	// A leader of term 5 (node 3's, say) heard at a commit the log holds,
	// then a heartbeat of term 4 committing past it, which raft ignores.
	const term = 5
	ok := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(term)), Commit: new(last)}
	if err := r.Step(ok); err != nil {
		t.Fatalf("a heartbeat committing the log's end: %v", err)
	}
	stale := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(term - 1)), Commit: new(last + 5)}
	if err := r.Step(stale); err != nil {
		t.Fatalf("a heartbeat of an older term: %v", err)
	}
	hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(term)), Commit: new(last + 5)}
	err = r.Step(hb)
	if !errors.Is(err, ErrLogLost) || !errors.Is(err, ErrFailed) {
		t.Fatalf("a heartbeat committing %d past the log's end %d: %v, want ErrLogLost and ErrFailed", last+5, last, err)
	}
	if !errors.Is(sm.lost, ErrLogLost) {
		t.Fatalf("the state machine was told %v, want ErrLogLost", sm.lost)
	}
	if r.HasReady() {
		t.Fatal("a failed replica has work")
	}
}

// TestHeartbeatAfterAStepAppendIsNoLoss: a follower steps a MsgApp and
// then a heartbeat committing its entries, with no HandleReady between
// (the scheduler steps a run of frames before it): raft holds them, not
// yet written, and the commit is within its log. The replica must go on:
// the ErrLogLost guard withdrawn before compared with the entries written
// and stopped healthy replicas catching up after a refill.
func TestHeartbeatAfterAStepAppendIsNoLoss(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 2}, tr.stores[2], &lossSM{})
	if err != nil {
		t.Fatal(err)
	}
	last, err := tr.stores[2].LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	lastTerm, err := tr.stores[2].Term(last)
	if err != nil {
		t.Fatal(err)
	}
	const term = 5
	app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(term)),
		Index: new(last), LogTerm: new(lastTerm), Commit: new(last), Entries: []*raftpb.Entry{
			{Index: new(last + 1), Term: new(uint64(term))}, {Index: new(last + 2), Term: new(uint64(term))}}}
	if err := r.Step(app); err != nil {
		t.Fatal(err)
	}
	hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(3)), To: new(uint64(2)), Term: new(uint64(term)), Commit: new(last + 2)}
	if err := r.Step(hb); err != nil {
		t.Fatalf("a heartbeat committing entries stepped but not yet written: %v", err)
	}
	if _, err := r.HandleReady(); err != nil {
		t.Fatal(err)
	}
	if got := r.Status().GetCommit(); got != last+2 {
		t.Fatalf("commit %d, want %d", got, last+2)
	}
}

// TestSnapshotNotNamingReceiverIsNotSent: a learner added after the
// leader's last snapshot would drop that snapshot (its configuration does
// not name the learner) and acknowledge index 0, which sends the leader
// into another snapshot each round trip. Such a snapshot is reported
// failed instead of sent; once a snapshot names the learner it is sent
// and the learner catches up.
func TestSnapshotNotNamingReceiverIsNotSent(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	for _, v := range []string{"a", "b"} {
		if _, err := tr.reps[1].Propose(Proposal{Data: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		tr.settle()
	}
	if err := tr.stores[1].CreateSnapshot(tr.reps[1].Applied(), tr.reps[1].ConfState(), nil); err != nil {
		t.Fatal(err)
	}
	tr.stores[4], tr.sms[4] = NewMemStorage(), &listSM{}
	e := env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	learner, err := New(e, Config{ID: 4}, tr.stores[4], tr.sms[4])
	if err != nil {
		t.Fatal(err)
	}
	tr.reps[4] = learner
	ccs, err := raftpb.ConfChangesFromString("l4")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.reps[1].ProposeConfChange(&raftpb.ConfChangeV2{Changes: ccs}); err != nil {
		t.Fatal(err)
	}
	// rounds runs n rounds of every replica's Ready, sync and delivery,
	// with a tick of the leader each, and counts the snapshots sent to 4.
	rounds := func(n int) int {
		snaps := 0
		for range n {
			tr.reps[1].Tick()
			for id := range tr.reps {
				for tr.reps[id].HasReady() {
					w, err := tr.reps[id].HandleReady()
					if err != nil {
						t.Fatal(err)
					}
					tr.inflight = append(tr.inflight, w.Messages...)
					tr.syncSeq[id] = max(tr.syncSeq[id], w.SyncSeq)
					tr.reps[id].SnapshotsSent(w.Messages)
				}
				tr.sync(id)
			}
			for _, m := range tr.inflight {
				if m.GetTo() == 4 && m.GetType() == raftpb.MsgSnap {
					snaps++
				}
			}
			tr.deliver()
		}
		return snaps
	}
	if n := rounds(30); n != 0 {
		t.Fatalf("%d snapshots not naming the learner sent to it", n)
	}
	if !slices.Contains(tr.reps[1].ConfState().GetLearners(), 4) {
		t.Fatalf("learner 4 not added: %v", tr.reps[1].ConfState())
	}
	if learner.Applied() != 0 {
		t.Fatalf("learner applied %d without a snapshot", learner.Applied())
	}
	if err := tr.stores[1].CreateSnapshot(tr.reps[1].Applied(), tr.reps[1].ConfState(), nil); err != nil {
		t.Fatal(err)
	}
	if n := rounds(30); n == 0 || learner.Applied() != tr.reps[1].Applied() {
		t.Fatalf("after a snapshot naming it: %d sent, learner applied %d of %d", n, learner.Applied(), tr.reps[1].Applied())
	}
}

// unreadableStorage is a Storage whose entries cannot be read back: err
// is raft.ErrCompacted, as a partition answers for batches found damaged
// when read, or the damage itself, as the metadata log gives it.
type unreadableStorage struct {
	Storage
	err error
}

func (s unreadableStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	return nil, s.err
}

// TestUnreadableCommittedEntriesFailTheReplica: a replica restarted
// behind its commit index reads the entries to apply back from storage,
// which cannot give them (damaged). Raft would panic ("unexpected error
// when getting unapplied entries"), taking the node's every group down,
// again at each restart; the replica fails with ErrLogLost instead and its
// state machine is told. So does one campaigning over such entries (raft
// scans them for a conf change first), and either when the storage gives
// the damage itself rather than raft.ErrCompacted (raft panics with it).
func TestUnreadableCommittedEntriesFailTheReplica(t *testing.T) {
	tr := newTrio(t)
	if err := tr.reps[1].Campaign(); err != nil {
		t.Fatal(err)
	}
	tr.settle()
	for _, c := range []struct {
		campaign bool
		err      error
	}{{false, raft.ErrCompacted}, {true, raft.ErrCompacted}, {false, errors.New("batch: corrupt")}, {true, errors.New("batch: corrupt")}} {
		campaign := c.campaign
		sm := &lossSM{}
		r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 2}, unreadableStorage{tr.stores[2], c.err}, sm)
		if err != nil {
			t.Fatal(err)
		}
		if campaign {
			err = r.Campaign()
		} else {
			_, err = r.HandleReady()
		}
		if !errors.Is(err, ErrLogLost) || !errors.Is(err, ErrFailed) {
			t.Fatalf("campaign %v over committed entries read as %v: %v, want ErrLogLost and ErrFailed", campaign, c.err, err)
		}
		if !errors.Is(sm.lost, ErrLogLost) {
			t.Fatalf("the state machine was told %v, want ErrLogLost", sm.lost)
		}
		if r.HasReady() {
			t.Fatal("a failed replica has work")
		}
	}
}

// failingEntries is a MemStorage whose Entries fails, once armed, after
// okLeft more calls: an I/O error, or damage the metadata log finds.
type failingEntries struct {
	*MemStorage
	armed  bool
	okLeft int
}

func (s *failingEntries) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if s.armed {
		if s.okLeft == 0 {
			return nil, errors.New("segment read: EIO")
		}
		s.okLeft--
	}
	return s.MemStorage.Entries(lo, hi, maxSize)
}

// runReady runs HandleReady and Synced until the replica has nothing to do.
func runReady(t *testing.T, r *Replica, st Storage) {
	t.Helper()
	for range 20 {
		if !readyRound(t, r, st) {
			return
		}
	}
}

// readyRound runs HandleReady until the replica has no Ready, then syncs
// and releases what it wrote; false when it wrote nothing.
func readyRound(t *testing.T, r *Replica, st Storage) bool {
	t.Helper()
	var seq uint64
	for r.HasReady() {
		w, err := r.HandleReady()
		if err != nil {
			t.Fatal(err)
		}
		seq = max(seq, w.SyncSeq)
	}
	if seq == 0 {
		return false
	}
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Synced(seq); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestConfChangeApplyReadingALostLogFailsTheReplica: a leader applying a
// conf change sends the new member appends, reading its log; raft panics
// with the storage's error as is. The replica fails (ErrLogLost) instead
// of the node.
func TestConfChangeApplyReadingALostLogFailsTheReplica(t *testing.T) {
	st := &failingEntries{MemStorage: NewBootstrapStorage([]uint64{1})}
	sm := &lossSM{}
	r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 1}, st, sm)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Campaign(); err != nil {
		t.Fatal(err)
	}
	runReady(t, r, st)
	ccs, err := raftpb.ConfChangesFromString("l2")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ProposeConfChange(&raftpb.ConfChangeV2{Changes: ccs}); err != nil {
		t.Fatal(err)
	}
	// Written, synced and stepped back: committed, not yet applied.
	readyRound(t, r, st)
	st.armed, st.okLeft = true, 1 // the apply's read passes, the append's fails
	if _, err := r.HandleReady(); !errors.Is(err, ErrLogLost) {
		t.Fatalf("HandleReady over a log that fails to read: %v, want ErrLogLost", err)
	}
	if !errors.Is(sm.lost, ErrLogLost) {
		t.Fatalf("the state machine was told %v, want ErrLogLost", sm.lost)
	}
}

// panickingSM panics in PrepareProposal with an error value.
type panickingSM struct{ lossSM }

func (*panickingSM) PrepareProposal(*Proposal, ProposalPoint) error {
	panic(errors.New("state machine bug"))
}

// TestStateMachinePanicIsNotALostLog: only errors raft got from its
// storage count as a lost log; a state machine panicking with an error
// value is a bug and panics on.
func TestStateMachinePanicIsNotALostLog(t *testing.T) {
	st := NewBootstrapStorage([]uint64{1})
	r, err := New(env.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Config{ID: 1}, st, &panickingSM{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Campaign(); err != nil {
		t.Fatal(err)
	}
	runReady(t, r, st)
	defer func() {
		if p := recover(); p == nil {
			t.Fatal("a state machine's panic was recovered")
		}
	}()
	_, _ = r.Propose(Proposal{Data: []byte("x")})
}
