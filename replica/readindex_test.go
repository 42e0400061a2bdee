package replica

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// readAsync starts a ReadIndex of group 1 on s and returns where its
// answer arrives.
func readAsync(s *Scheduler, group uint64) <-chan readResult {
	out := make(chan readResult, 1)
	go func() {
		p, err := s.ReadIndex(context.Background(), group)
		out <- readResult{point: p, err: err}
	}()
	return out
}

// queuedReads reports the reads of group waiting on s, in its queue or in
// its round.
func queuedReads(s *Scheduler, group uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	n := len(g.reads)
	if !g.running && g.round != nil {
		n += len(g.round.waiters)
	}
	return n
}

// awaitQueued waits, for a bounded number of passes, until n reads of
// group wait on s: the callers' goroutines queue them when they get to.
func awaitQueued(t *testing.T, net *memNet, s *Scheduler, group uint64, n int) {
	t.Helper()
	for range 10000 {
		net.settle(t)
		if queuedReads(s, group) == n {
			return
		}
		time.Sleep(time.Millisecond) // the goroutines calling ReadIndex run meanwhile
	}
	t.Fatalf("%d reads never queued on group %d (%d)", n, group, queuedReads(s, group))
}

// pending reports whether a read started by readAsync is unanswered.
func pending(ch <-chan readResult) bool { return len(ch) == 0 }

// readAnswerWaitMax bounds the wait for a read's goroutine to hand over an
// answer its scheduler already gave.
const readAnswerWaitMax = 10 * time.Second

// answerOf returns the answer of a read started by readAsync, failing the
// test when none comes.
func answerOf(t *testing.T, ch <-chan readResult, what string) readResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(readAnswerWaitMax):
		t.Fatalf("%s: no answer", what)
		return readResult{}
	}
}

// cutNet is a memNet that can cut one node off from the others.
func cutNet() (*memNet, *atomic.Uint64) {
	var cut atomic.Uint64
	net := &memNet{nodes: map[uint64]*Scheduler{}, drop: func(m *raftpb.Message) bool {
		c := cut.Load()
		return c != 0 && (m.GetFrom() == c || m.GetTo() == c)
	}}
	return net, &cut
}

// TestReadIndexDeposedLeaderNeverAnswers: a leader cut off from the
// majority keeps its read unanswered while the others elect a leader and
// commit a write, and fails it with ErrNotLeader once CheckQuorum makes it
// step down; a read on the new leader sees the write. A follower's read
// fails at once.
func TestReadIndexDeposedLeaderNeverAnswers(t *testing.T) {
	net, cut := cutNet()
	threeNodes(t, net)
	sm := map[uint64]*listSM{}
	for node := uint64(1); node <= 3; node++ {
		on(t, net.nodes[node], 1, func(r *Replica) { sm[node] = r.sm.(*listSM) })
	}
	var err error
	on(t, net.nodes[1], 1, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte("a")}) })
	if err != nil {
		t.Fatal(err)
	}
	net.settle(t)
	var term uint64
	on(t, net.nodes[1], 1, func(r *Replica) { term = r.Leadership().Term })
	p, err := net.nodes[1].ReadIndex(context.Background(), 1)
	if err != nil || p.Index != 3 || p.Term != term {
		t.Fatalf("leader's read: %+v %v, want index 3 term %d", p, err, term)
	}
	if _, err := net.nodes[2].ReadIndex(context.Background(), 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower's read: %v, want ErrNotLeader", err)
	}

	cut.Store(1)
	stale := readAsync(net.nodes[1], 1)
	awaitQueued(t, net, net.nodes[1], 1, 1)
	// The others elect a leader once their election timeout passes.
	var lead uint64
	for i := 0; i < 200 && lead == 0; i++ {
		for _, node := range []uint64{2, 3} {
			net.nodes[node].Tick()
			on(t, net.nodes[node], 1, func(r *Replica) {
				if r.Leadership().Ready && r.Leadership().Leader == node {
					lead = node
				}
			})
		}
		net.settle(t)
	}
	if lead == 0 {
		t.Fatal("nodes 2 and 3 elected no leader")
	}
	on(t, net.nodes[lead], 1, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte("b")}) })
	if err != nil {
		t.Fatalf("new leader's proposal: %v", err)
	}
	net.settle(t)
	p, err = net.nodes[lead].ReadIndex(context.Background(), 1)
	if err != nil {
		t.Fatalf("new leader's read: %v", err)
	}
	var applied []string
	on(t, net.nodes[lead], 1, func(*Replica) { applied = slices.Clone(sm[lead].applied) })
	if !slices.Contains(applied, "b@5") || p.Term <= term {
		t.Fatalf("new leader's read at %+v applied %v, want b@5 in a term after %d", p, applied, term)
	}
	if !pending(stale) {
		t.Fatal("the cut-off leader answered its read after another leader wrote")
	}
	// CheckQuorum: an election timeout without a quorum's answer steps the
	// old leader down, and its read fails.
	for i := 0; i < 100 && pending(stale); i++ {
		net.nodes[1].Tick()
		net.settle(t)
	}
	if res := answerOf(t, stale, "the cut-off leader's read after 100 ticks"); !errors.Is(res.err, ErrNotLeader) {
		t.Fatalf("cut-off leader's read: %+v %v, want ErrNotLeader", res.point, res.err)
	}
}

// TestReadIndexBatchesReads: reads queued while a round is in flight share
// the next round; all are answered once a quorum is heard again.
func TestReadIndexBatchesReads(t *testing.T) {
	net, cut := cutNet()
	threeNodes(t, net)
	s := net.nodes[1]
	cut.Store(1) // the first round's heartbeats are lost
	first := readAsync(s, 1)
	awaitQueued(t, net, s, 1, 1)
	const reads = 50
	var rest []<-chan readResult
	for range reads {
		rest = append(rest, readAsync(s, 1))
	}
	awaitQueued(t, net, s, 1, reads+1)
	cut.Store(0)
	// Raft's next heartbeat carries the pending round's context.
	for i := 0; i < 20 && pending(first); i++ {
		s.Tick()
		net.settle(t)
	}
	for i, ch := range append([]<-chan readResult{first}, rest...) {
		var res readResult
		select {
		case res = <-ch:
		default:
			for j := 0; j < 20; j++ {
				s.Tick()
				net.settle(t)
			}
			res = answerOf(t, ch, "a batched read")
		}
		if res.err != nil || res.point.Index != 2 {
			t.Fatalf("read %d: %+v %v, want index 2", i, res.point, res.err)
		}
	}
	if n := s.readSeq.Load(); n != 2 {
		t.Fatalf("%d rounds for %d reads, want 2", n, reads+1)
	}
}

// TestReadIndexWakesQuiescedGroup: a read on a quiesced leader is
// confirmed without ticks, costs no election, and the group quiesces again.
func TestReadIndexWakesQuiescedGroup(t *testing.T) {
	qn := startQuiesceNodes(t, 1)
	leader := qn.leaderOf(1)
	on(t, qn.net.nodes[leader], 1, func(r *Replica) { _ = r.Campaign() })
	qn.net.settle(t)
	for i := 0; i < 50 && !qn.quiesced(1); i++ {
		qn.tick(1, 2, 3)
	}
	if !qn.quiesced(1) {
		t.Fatal("the group never quiesced")
	}
	var term uint64
	on(t, qn.net.nodes[leader], 1, func(r *Replica) { term = r.Leadership().Term })
	p, err := qn.net.nodes[leader].ReadIndex(context.Background(), 1)
	if err != nil || p.Term != term {
		t.Fatalf("read on a quiesced leader: %+v %v, want term %d", p, err, term)
	}
	for i := 0; i < 50 && !qn.quiesced(1); i++ {
		qn.tick(1, 2, 3)
	}
	if !qn.quiesced(1) {
		t.Fatal("the group did not quiesce again after the read")
	}
	on(t, qn.net.nodes[leader], 1, func(r *Replica) {
		if l := r.Leadership(); !l.Ready || l.Term != term {
			t.Errorf("leadership %+v after the read, want ready in term %d", l, term)
		}
	})
}

// TestReadIndexOneVoter: a group of one voter answers its reads itself.
func TestReadIndexOneVoter(t *testing.T) {
	net := &memNet{nodes: map[uint64]*Scheduler{}}
	s, err := NewScheduler(testEnv(), SchedulerConfig{Workers: 1, SyncWorkers: 1}, net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	net.nodes[1] = s
	st := NewBootstrapStorage([]uint64{1})
	r, err := New(testEnv(), Config{ID: 1, GroupID: 7}, st, &listSM{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddGroup(7, r, st, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	on(t, s, 7, func(r *Replica) { _ = r.Campaign() })
	net.settle(t)
	on(t, s, 7, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte("a")}) })
	if err != nil {
		t.Fatal(err)
	}
	net.settle(t)
	p, err := s.ReadIndex(context.Background(), 7)
	if err != nil || p.Index != 3 {
		t.Fatalf("one voter's read: %+v %v, want index 3", p, err)
	}
}

// TestReadIndexFailsWhenGroupRemoved: a read whose round is in flight is
// answered when its group leaves the scheduler, as are the queued ones.
func TestReadIndexFailsWhenGroupRemoved(t *testing.T) {
	net, cut := cutNet()
	threeNodes(t, net)
	s := net.nodes[1]
	cut.Store(1)
	first := readAsync(s, 1)
	awaitQueued(t, net, s, 1, 1)
	second := readAsync(s, 1)
	awaitQueued(t, net, s, 1, 2)
	if err := s.RemoveGroup(1); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan readResult{first, second} {
		if res := <-ch; !errors.Is(res.err, ErrUnknownGroup) {
			t.Fatalf("read after RemoveGroup: %v, want ErrUnknownGroup", res.err)
		}
	}
}

// TestReadIndexDroppedRound: a round whose heartbeat answers are all lost
// while the leader stays active (appends keep its followers recent, so
// CheckQuorum keeps it) fails with ErrReadDropped after its bound of
// ticks, rather than waiting for ever; the next read, answered, succeeds.
func TestReadIndexDroppedRound(t *testing.T) {
	var lose atomic.Bool
	net := &memNet{nodes: map[uint64]*Scheduler{}, drop: func(m *raftpb.Message) bool {
		return lose.Load() && m.GetType() == raftpb.MsgHeartbeatResp
	}}
	threeNodes(t, net)
	s := net.nodes[1]
	lose.Store(true)
	read := readAsync(s, 1)
	awaitQueued(t, net, s, 1, 1)
	for i := 0; i < 2*readRoundTicksMax && pending(read); i++ {
		var err error
		on(t, s, 1, func(r *Replica) { _, err = r.Propose(Proposal{Data: []byte("keep-alive")}) })
		if err != nil {
			t.Fatalf("tick %d: the leader stopped leading: %v", i, err)
		}
		for _, n := range net.nodes {
			n.Tick()
		}
		net.settle(t)
	}
	if res := answerOf(t, read, "a read without a quorum's answer"); !errors.Is(res.err, ErrReadDropped) {
		t.Fatalf("read whose answers were lost: %+v %v, want ErrReadDropped", res.point, res.err)
	}
	lose.Store(false)
	if _, err := s.ReadIndex(context.Background(), 1); err != nil {
		t.Fatalf("read once answers arrive: %v", err)
	}
}
