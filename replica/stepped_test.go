package replica

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// traceNet is a memNet for stepped schedulers that also writes down every
// message it carries, in the order sent.
type traceNet struct {
	nodes map[uint64]*Scheduler
	trace []string
}

func (n *traceNet) Send(groupID uint64, msgs []*raftpb.Message) {
	for _, m := range msgs {
		n.trace = append(n.trace, fmt.Sprintf("g%d %d→%d %s term %d index %d commit %d entries %d",
			groupID, m.GetFrom(), m.GetTo(), m.GetType(), m.GetTerm(), m.GetIndex(), m.GetCommit(), len(m.GetEntries())))
		if to := n.nodes[m.GetTo()]; to != nil {
			to.Deliver(groupID, proto.Clone(m).(*raftpb.Message))
		}
	}
}

// TestSteppedSchedulersRunTheSameTwice: three nodes' stepped schedulers,
// four groups each, stepped from the test goroutine with the clock and
// raft's randomness fixed, elect leaders by their own election timeouts,
// replicate a proposal in every group and sync: two runs send the same
// messages in the same order and apply the same entries.
func TestSteppedSchedulersRunTheSameTwice(t *testing.T) {
	const groups = 4
	run := func(t *testing.T) (trace []string, applied map[[2]uint64][]string) {
		cryptotest.SetGlobalRandom(t, 7) // raft's election jitter
		clock := env.NewManualClock(time.Unix(0, 0))
		e := testEnv()
		e.Clock = clock
		net := &traceNet{nodes: map[uint64]*Scheduler{}}
		sms := map[[2]uint64]*listSM{}
		for node := uint64(1); node <= 3; node++ {
			s, err := NewScheduler(e, SchedulerConfig{Stepped: true, StepSyncs: true, TickInterval: 10 * time.Millisecond}, net)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			net.nodes[node] = s
			for g := uint64(1); g <= groups; g++ {
				st := NewBootstrapStorage([]uint64{1, 2, 3})
				sm := &listSM{}
				r, err := New(e, Config{ID: node, GroupID: g}, st, sm)
				if err != nil {
					t.Fatal(err)
				}
				sms[[2]uint64{node, g}] = sm
				if err := s.AddGroup(g, r, st, GroupOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		step := func() {
			for node := uint64(1); node <= 3; node++ {
				for range 100 {
					if !net.nodes[node].Step() {
						break
					}
				}
			}
		}
		proposed := map[uint64]bool{}
		for i := range 300 {
			clock.Advance(time.Millisecond)
			step()
			if i < 150 {
				continue
			}
			for g := uint64(1); g <= groups; g++ {
				for node := uint64(1); node <= 3; node++ {
					// The test goroutine steps: Do runs the group's turn at once.
					if err := net.nodes[node].Do(g, func(r *Replica) {
						if r.Status().Lead == node && !proposed[g] {
							if _, err := r.Propose(Proposal{Data: fmt.Appendf(nil, "v%d", g)}); err == nil {
								proposed[g] = true
							}
						}
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		applied = map[[2]uint64][]string{}
		for k, sm := range sms {
			if len(sm.applied) != 1 {
				t.Fatalf("node %d group %d applied %v, want one proposal", k[0], k[1], sm.applied)
			}
			applied[k] = sm.applied
		}
		return net.trace, applied
	}
	var traces [2][]string
	var applied [2]map[[2]uint64][]string
	for i := range 2 {
		t.Run(fmt.Sprint("run ", i), func(t *testing.T) { traces[i], applied[i] = run(t) })
	}
	if t.Failed() {
		return
	}
	if len(traces[0]) < 50 {
		t.Fatalf("only %d messages sent", len(traces[0]))
	}
	for i := range min(len(traces[0]), len(traces[1])) {
		if traces[0][i] != traces[1][i] {
			t.Fatalf("message %d differs: %q, then %q", i, traces[0][i], traces[1][i])
		}
	}
	if len(traces[0]) != len(traces[1]) {
		t.Fatalf("%d messages, then %d", len(traces[0]), len(traces[1]))
	}
	for k, a := range applied[0] {
		if !slices.Equal(a, applied[1][k]) {
			t.Fatalf("node %d group %d applied %v, then %v", k[0], k[1], a, applied[1][k])
		}
	}
}

// TestSteppedSchedulerRunsGroupsInIDOrder: calls queued by other
// goroutines in any order run at the next Step in group-id order, and a
// call from a group's turn is refused as on a worker.
func TestSteppedSchedulerRunsGroupsInIDOrder(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Stepped: true, StepSyncs: true}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addSoloGroups(t, s, 3)
	for s.Step() { // the groups' first turns
	}
	var (
		mu    sync.Mutex
		order []uint64
		wg    sync.WaitGroup
	)
	queued := func(g uint64) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.groups[g].ops) > 0
	}
	for _, g := range []uint64{3, 1, 2} {
		wg.Go(func() {
			if err := s.Do(g, func(*Replica) {
				mu.Lock()
				order = append(order, g)
				mu.Unlock()
			}); err != nil {
				t.Error(err)
			}
		})
		for !queued(g) {
			time.Sleep(time.Millisecond) // waiting on another goroutine's call: nothing to wait on
		}
	}
	s.Step()
	wg.Wait()
	if !slices.Equal(order, []uint64{1, 2, 3}) {
		t.Fatalf("calls ran in group order %v, want [1 2 3]", order)
	}
	var inner error
	if err := s.Do(2, func(*Replica) { inner = s.Do(1, func(*Replica) {}) }); err != nil {
		t.Fatal(err)
	}
	if inner != ErrReentrant {
		t.Fatalf("a call from a group's turn: %v, want ErrReentrant", inner)
	}
}

// TestSteppedSchedulerCloseWaitsForAStep: Close during a Step returns once
// the turn under way ends; a read asked on the stepping goroutine is
// refused, as it would wait for itself.
func TestSteppedSchedulerCloseWaitsForAStep(t *testing.T) {
	s, err := NewScheduler(testEnv(), SchedulerConfig{Stepped: true}, &memNet{})
	if err != nil {
		t.Fatal(err)
	}
	addSoloGroups(t, s, 2)
	for s.Step() {
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.ReadIndex(ctx, 1); err != ErrReentrant {
		t.Fatalf("a read on the stepping goroutine: %v, want ErrReentrant", err)
	}
	started, hold := make(chan struct{}), make(chan struct{})
	var ended bool
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.Do(1, func(*Replica) {
			close(started)
			<-hold
			ended = true
		})
	})
	wg.Go(func() { _ = s.Do(2, func(*Replica) {}) })
	for {
		s.mu.Lock()
		n := len(s.groups[1].ops) + len(s.groups[2].ops)
		s.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond) // waiting on other goroutines' calls: nothing to wait on
	}
	stepped := make(chan struct{})
	go func() { s.Step(); close(stepped) }()
	<-started
	endedAtClose := make(chan bool, 1)
	go func() { s.Close(); endedAtClose <- ended }()
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	if !<-endedAtClose {
		t.Fatal("Close returned while a Step's turn still ran")
	}
	<-stepped
	wg.Wait()
}
