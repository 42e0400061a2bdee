package controller

import (
	"errors"
	"testing"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

// bareController is a Controller's state machine side alone, at the
// bootstrap state of a one-node cluster, driven by direct calls.
func bareController(t *testing.T) *Controller {
	t.Helper()
	st, err := meta.Bootstrap("c", []*metav1.Broker{{NodeId: 1}}, bootstrapIndex)
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.New(st)
	if err != nil {
		t.Fatal(err)
	}
	return &Controller{
		e: testEnv(vfs.NewMem(), 1), cfg: Config{SnapshotEntries: 1000}.withDefaults(),
		machine: m, applied: bootstrapIndex, changed: make(chan struct{}), leaderMoved: make(chan struct{}),
		waiters: map[uint64]*waiter{}, snapshotDue: make(chan struct{}, 1),
	}
}

// prepared is a command as the leader proposes it at (index, term).
func prepared(t *testing.T, c *Controller, cmd *metav1.Command, index, term uint64) *raftpb.Entry {
	t.Helper()
	data, err := meta.EncodeCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &replica.Proposal{Data: data}
	if err := (*stateMachine)(c).PrepareProposal(p, replica.ProposalPoint{Index: index, Term: term}); err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: new(index), Term: new(term), Data: p.Data}
}

func empty(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term)}
}

func wait(c *Controller, index, term uint64) *waiter {
	w := &waiter{term: term, done: make(chan waitResult, 1)}
	c.waiters[index] = w
	return w
}

func outcome(t *testing.T, w *waiter) waitResult {
	t.Helper()
	select {
	case r := <-w.done:
		return r
	default:
		t.Fatal("the waiter was not answered")
		return waitResult{}
	}
}

func pending(t *testing.T, w *waiter) {
	t.Helper()
	if len(w.done) != 0 {
		t.Fatalf("answered early: %+v", <-w.done)
	}
}

// A waiter gets its entry's Result when the entry at its index has its
// term; another term there, or an entry of a later term before it, means
// a new leader overwrote it.
func TestWaitersAnsweredByIndexAndTerm(t *testing.T) {
	c := bareController(t)
	sm := (*stateMachine)(c)
	mine := prepared(t, c, allocate(1), 3, 2)
	wMine := wait(c, 3, 2)
	wOverwritten := wait(c, 4, 2)
	wLater := wait(c, 6, 2)
	wNext := wait(c, 7, 3)
	if err := sm.Apply([]*raftpb.Entry{empty(2, 2), mine}); err != nil {
		t.Fatal(err)
	}
	if r := outcome(t, wMine); r.err != nil || r.result.GetFirstProducerId() != 0 {
		t.Fatalf("own entry: %+v", r)
	}
	pending(t, wOverwritten)
	// A new leader of term 3 put its empty entry at 4.
	if err := sm.Apply([]*raftpb.Entry{empty(4, 3)}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*waiter{wOverwritten, wLater} {
		if r := outcome(t, w); !errors.Is(r.err, errLost) || !errors.Is(r.err, ErrNotController) {
			t.Fatalf("overwritten proposal: %+v", r)
		}
	}
	pending(t, wNext)
	if c.Applied() != 4 || c.machine.AppliedIndex() != 4 {
		t.Fatalf("applied %d, machine %d", c.Applied(), c.machine.AppliedIndex())
	}
}

// A new term's first proposal follows the applied offset; the next ones
// follow each other. An entry stamped at another offset fails the apply.
func TestProposalsStampedWithConsecutiveOffsets(t *testing.T) {
	c := bareController(t)
	sm := (*stateMachine)(c)
	a := prepared(t, c, allocate(1), 2, 1)
	b := prepared(t, c, allocate(1), 3, 1)
	if err := sm.Apply([]*raftpb.Entry{a, b}); err != nil {
		t.Fatal(err)
	}
	if c.appliedNext != 2 {
		t.Fatalf("next offset %d after two entries", c.appliedNext)
	}
	// Term 2's leader proposed one that was dropped (offset given back) and
	// then one that takes offset 2.
	prepared(t, c, allocate(1), 4, 2)
	c.prepNext--
	d := prepared(t, c, allocate(1), 4, 2)
	if err := sm.Apply([]*raftpb.Entry{d}); err != nil {
		t.Fatal(err)
	}
	c.prepTerm = 0 // forget the count: the next stamp restarts from the applied offset
	c.appliedNext = 7
	bad := prepared(t, c, allocate(1), 5, 3)
	c.appliedNext = 3
	if err := sm.Apply([]*raftpb.Entry{bad}); !errors.Is(err, errBadEntry) {
		t.Fatalf("entry at offset 7 after 3: %v", err)
	}
}

// A snapshot from the leader past a waiting proposal leaves its fate
// unknown; the state and next offset are the snapshot's.
func TestRestorePastAWaiter(t *testing.T) {
	c := bareController(t)
	w := wait(c, 5, 1)
	src := bareController(t)
	for i := uint64(2); i <= 9; i++ {
		if err := (*stateMachine)(src).Apply([]*raftpb.Entry{prepared(t, src, allocate(1), i, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := src.machine.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap := &raftpb.Snapshot{Data: encodeSnapshot(src.appliedNext, st), Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(1))}}
	if err := (*stateMachine)(c).Restore(snap); err != nil {
		t.Fatal(err)
	}
	if r := outcome(t, w); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("waiter below the snapshot: %+v", r)
	}
	got, _ := c.machine.Snapshot()
	if string(got) != string(st) || c.appliedNext != 8 || c.Applied() != 9 {
		t.Fatalf("restored next offset %d, applied %d", c.appliedNext, c.Applied())
	}
	if err := (*stateMachine)(c).Restore(&raftpb.Snapshot{Data: []byte("junk"), Metadata: snap.Metadata}); err == nil {
		t.Fatal("restored junk")
	}
}
