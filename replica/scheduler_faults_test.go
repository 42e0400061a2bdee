package replica

import (
	"errors"
	"fmt"
	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// threeNodes starts a scheduler per node on net, each with group 1 of
// voters 1, 2 and 3 over a bootstrap storage, and elects node 1.
func threeNodes(t *testing.T, net *memNet) map[uint64]*MemStorage {
	t.Helper()
	stores := map[uint64]*MemStorage{}
	for node := uint64(1); node <= 3; node++ {
		s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, net)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		net.nodes[node] = s
		stores[node] = NewBootstrapStorage([]uint64{1, 2, 3})
		r, err := New(testEnv(), Config{ID: node, GroupID: 1}, stores[node], &listSM{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddGroup(1, r, stores[node], GroupOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	on(t, net.nodes[1], 1, func(r *Replica) { _ = r.Campaign() })
	net.settle(t)
	return stores
}

// TestSchedulerSnapshotLost: the first snapshot the leader sends a
// follower is lost; the scheduler reports each snapshot once handed to the
// Sender, so the leader probes the follower again and sends another,
// rather than waiting in StateSnapshot for ever.
func TestSchedulerSnapshotLost(t *testing.T) {
	var isolated atomic.Bool
	var snaps atomic.Int64
	net := &memNet{nodes: map[uint64]*Scheduler{}}
	net.drop = func(m *raftpb.Message) bool {
		if m.GetType() == raftpb.MsgSnap && snaps.Add(1) == 1 {
			return true
		}
		return isolated.Load() && (m.GetTo() == 3 || m.GetFrom() == 3)
	}
	stores := threeNodes(t, net)
	isolated.Store(true)
	for _, v := range []string{"a", "b", "c"} {
		on(t, net.nodes[1], 1, func(r *Replica) { _, _ = r.Propose(Proposal{Data: []byte(v)}) })
		net.settle(t)
	}
	var last uint64
	on(t, net.nodes[1], 1, func(r *Replica) {
		last = r.Applied()
		if err := stores[1].CreateSnapshot(last, r.ConfState(), nil); err != nil {
			t.Fatal(err)
		}
	})
	isolated.Store(false)
	match := func() (uint64, tracker.StateType) {
		var pr tracker.Progress
		on(t, net.nodes[1], 1, func(r *Replica) { pr = r.Status().Progress[3] })
		return pr.Match, pr.State
	}
	for range 40 {
		for _, s := range net.nodes {
			s.Tick()
		}
		net.settle(t)
		if m, _ := match(); m >= last {
			break
		}
	}
	if m, st := match(); m < last {
		t.Fatalf("follower 3 matched %d in state %s after 40 ticks, want %d (snapshots sent: %d)", m, st, last, snaps.Load())
	}
	if n := snaps.Load(); n < 2 {
		t.Fatalf("%d snapshots sent, want the lost one and another", n)
	}
}

// guardedStorage counts the writes and syncs made after it was closed, and
// can hold its Syncs until released.
type guardedStorage struct {
	*MemStorage
	closed  atomic.Bool
	misuse  atomic.Int64
	entered chan struct{} // a Sync started (when block is set)
	block   chan struct{} // Syncs wait for it to close, when set
}

func newGuardedStorage(voters []uint64) *guardedStorage {
	return &guardedStorage{MemStorage: NewBootstrapStorage(voters)}
}

func (s *guardedStorage) check() {
	if s.closed.Load() {
		s.misuse.Add(1)
	}
}

func (s *guardedStorage) Append(ents []*raftpb.Entry) error {
	s.check()
	return s.MemStorage.Append(ents)
}

func (s *guardedStorage) SetHardState(hs *raftpb.HardState) error {
	s.check()
	return s.MemStorage.SetHardState(hs)
}

func (s *guardedStorage) Sync() error {
	if s.block != nil {
		select {
		case s.entered <- struct{}{}:
		default: // only the first Sync is waited for
		}
		<-s.block
	}
	s.check()
	return s.MemStorage.Sync()
}

// TestSchedulerRemoveGroupStopsIt: a group removed while queued is not run
// any more, and RemoveGroup waits for a Sync under way, so the owner may
// close the storage once it returns.
func TestSchedulerRemoveGroupStopsIt(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stores := map[uint64]*guardedStorage{}
	for g := uint64(1); g <= 3; g++ {
		stores[g] = newGuardedStorage([]uint64{1})
		r, err := New(testEnv(), Config{ID: 1, GroupID: g}, stores[g], &listSM{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddGroup(g, r, stores[g], GroupOptions{}); err != nil {
			t.Fatal(err)
		}
		on(t, s, g, func(r *Replica) { _ = r.Campaign() })
	}
	s.waitIdle()

	// Group 1's Sync completes while group 2 holds the only worker, so
	// group 1 is queued to release the write when it is removed and its
	// storage closed.
	st1 := stores[1]
	st1.entered, st1.block = make(chan struct{}, 1), make(chan struct{})
	go func() { _ = s.Do(1, func(r *Replica) { _, _ = r.Propose(Proposal{Data: []byte("x")}) }) }()
	<-st1.entered
	started, release := make(chan struct{}), make(chan struct{})
	go func() { _ = s.Do(2, func(*Replica) { close(started); <-release }) }()
	<-started
	close(st1.block)
	s.mu.Lock()
	for len(s.runnable) == 0 {
		s.settled.Wait() // the syncer queues group 1 when its Sync ends
	}
	s.mu.Unlock()
	if err := s.RemoveGroup(1); err != nil {
		t.Error(err)
	}
	st1.closed.Store(true)
	close(release)
	s.waitIdle()
	if n := st1.misuse.Load(); n != 0 {
		t.Errorf("group 1 wrote %d times to its storage after RemoveGroup returned", n)
	}

	// Group 3's Sync is under way when it is removed.
	st := stores[3]
	st.entered, st.block = make(chan struct{}, 1), make(chan struct{})
	go func() { _ = s.Do(3, func(r *Replica) { _, _ = r.Propose(Proposal{Data: []byte("x")}) }) }()
	<-st.entered
	removed := make(chan struct{})
	go func() {
		if err := s.RemoveGroup(3); err != nil {
			t.Error(err)
		}
		st.closed.Store(true)
		close(removed)
	}()
	select {
	case <-removed:
		t.Error("RemoveGroup returned while the group's Sync was under way")
	case <-time.After(50 * time.Millisecond): // it must not return: nothing to wait for
	}
	close(st.block)
	<-removed
	s.waitIdle()
	if n := st.misuse.Load(); n != 0 {
		t.Errorf("group 3 synced %d times after RemoveGroup returned", n)
	}
}

// TestSchedulerTickerNoBurstAfterStall: when the clock jumps ten
// intervals (the process stalled), the ticker gives one tick and the next
// one an interval later, not the nine missed ones back to back.
func TestSchedulerTickerNoBurstAfterStall(t *testing.T) {
	const interval = 50 * time.Millisecond
	clock := env.NewManualClock(time.Unix(0, 0))
	e := testEnv()
	e.Clock = clock
	s, err := NewScheduler(e, SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: interval}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := clock.Now()
	if err := clock.WaitArmed(t.Context(), start.Add(interval)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * interval)
	// Re-armed past the new now once the ticker is done with the jump.
	if err := clock.WaitArmed(t.Context(), start.Add(11*interval)); err != nil {
		t.Fatal(err)
	}
	if n := s.Ticks(); n != 1 {
		t.Fatalf("%d ticks after a stall of ten intervals, want 1", n)
	}
	clock.Advance(interval)
	if err := clock.WaitArmed(t.Context(), start.Add(12*interval)); err != nil {
		t.Fatal(err)
	}
	if n := s.Ticks(); n != 2 {
		t.Fatalf("%d ticks an interval later, want 2", n)
	}
}

// TestSchedulerDoFromWorker: Do called on a worker (from a read state hook
// or from another Do) would wait for the worker it runs on; with one
// worker it answers ErrReentrant instead of hanging.
func TestSchedulerDoFromWorker(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inner := make(chan error, 2)
	st := NewBootstrapStorage([]uint64{1})
	r, err := New(testEnv(), Config{ID: 1, GroupID: 1}, st, &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	opts := GroupOptions{OnReadState: func(raft.ReadState) { inner <- s.Do(1, func(*Replica) {}) }}
	if err := s.AddGroup(1, r, st, opts); err != nil {
		t.Fatal(err)
	}
	on(t, s, 1, func(r *Replica) { _ = r.Campaign() })
	s.waitIdle()
	outer := make(chan error, 1)
	go func() {
		outer <- s.Do(1, func(r *Replica) {
			inner <- s.Do(1, func(*Replica) {})
			r.ReadIndex([]byte("r"))
		})
	}()
	for i := range 2 {
		select {
		case err := <-inner:
			if !errors.Is(err, ErrReentrant) {
				t.Fatalf("Do on a worker (%d): %v, want ErrReentrant", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Do on a worker hangs")
		}
	}
	if err := <-outer; err != nil {
		t.Fatal(err)
	}
}

// captureSync is a MemStorage whose Sync makes durable what was written
// when it started, as a real flush does, after waiting to be released:
// writes made meanwhile are not covered.
type captureSync struct {
	*MemStorage
	gated   atomic.Bool   // until set, Syncs are plain
	entered chan struct{} // one value per Sync started
	block   chan struct{} // a value releases one Sync; closed, all
}

func (s *captureSync) Sync() error {
	if !s.gated.Load() {
		return s.MemStorage.Sync()
	}
	s.mu.Lock()
	captured := s.written.frozen()
	s.mu.Unlock()
	s.entered <- struct{}{}
	<-s.block
	s.mu.Lock()
	defer s.mu.Unlock()
	s.durable = captured
	s.syncs++
	return nil
}

// TestSchedulerSyncReleasesOnlyWhatItCovered: a write made while a Sync
// is under way is not released by it: its proposal is not applied while
// its own Sync is under way, and a crash then loses it without an answer.
func TestSchedulerSyncReleasesOnlyWhatItCovered(t *testing.T) {
	st := &captureSync{MemStorage: NewBootstrapStorage([]uint64{1}), entered: make(chan struct{}, 64), block: make(chan struct{})}
	s, sm := singleVoter(t, st)
	defer s.Close()
	defer close(st.block) // before Close: let every Sync end
	var ready bool
	on(t, s, 1, func(r *Replica) { ready = r.Leadership().Ready })
	if !ready {
		t.Fatal("a single voter is not a ready leader after its campaign")
	}
	st.gated.Store(true)
	var a, b ProposalPoint
	on(t, s, 1, func(r *Replica) { a, _ = r.Propose(Proposal{Data: []byte("a")}) })
	<-st.entered // the Sync covering a is under way
	on(t, s, 1, func(r *Replica) { b, _ = r.Propose(Proposal{Data: []byte("b")}) })
	st.block <- struct{}{} // it ends: a is released, b is not
	<-st.entered           // b's Sync is under way
	// A turn of the worker (released responses, this call, then the Ready
	// they made), then a look at what it applied.
	on(t, s, 1, func(*Replica) {})
	var applied []string
	on(t, s, 1, func(*Replica) { applied = slices.Clone(sm.applied) })
	if want := []string{fmt.Sprintf("a@%d", a.Index)}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v while b's Sync is under way, want %v", applied, want)
	}
	st.Crash()
	if last, _ := st.LastIndex(); last != a.Index || b.Index != a.Index+1 {
		t.Fatalf("last index %d after the crash, want a's %d (b at %d lost)", last, a.Index, b.Index)
	}
}

// TestProposalDataMayBeReusedAtOnce: a caller may reuse a proposal's Data
// as soon as Propose returns (a partition proposes a produce request's
// batch in the frame buffer the Kafka connection reads its next request
// into): what is written, sent and applied is the data as proposed. Raft
// clones the entry as it appends it; should it stop (its appendEntry says
// it may), Propose must copy instead.
func TestProposalDataMayBeReusedAtOnce(t *testing.T) {
	s, sm := singleVoter(t, NewBootstrapStorage([]uint64{1}))
	defer s.Close()
	buf := []byte("proposed")
	on(t, s, 1, func(r *Replica) {
		if _, err := r.Propose(Proposal{Data: buf}); err != nil {
			t.Error(err)
		}
		copy(buf, "REUSED!!") // before any Ready of this proposal
	})
	s.waitIdle()
	var applied []string
	on(t, s, 1, func(*Replica) { applied = slices.Clone(sm.applied) })
	if len(applied) != 1 || !strings.HasPrefix(applied[0], "proposed@") {
		t.Fatalf("applied %q, want the data as proposed", applied)
	}
}

// singleVoter runs group 1 of one voter over st on a scheduler of one
// worker and one sync worker, campaigned and idle; the caller closes it.
func singleVoter(t *testing.T, st Storage) (*Scheduler, *listSM) {
	t.Helper()
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	sm := &listSM{}
	r, err := New(testEnv(), Config{ID: 1, GroupID: 1}, st, sm)
	if err == nil {
		err = s.AddGroup(1, r, st, GroupOptions{})
	}
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	on(t, s, 1, func(r *Replica) { _ = r.Campaign() })
	s.waitIdle()
	return s, sm
}
