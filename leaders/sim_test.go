package leaders

import (
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
)

// simNodes are three tables exchanging encoded heartbeats through an
// in-memory loop, on one manual clock: deterministic, no goroutines.
type simNodes struct {
	t      *testing.T
	clock  *env.ManualClock
	tables map[uint64]*Table
	silent map[uint64]bool    // nodes whose heartbeats are lost both ways
	cutTo  map[[2]uint64]bool // from, to: heartbeats lost one way
	// lostTo, from, to: heartbeats lost one way in flight, unknown to the
	// sender (cutTo's are never built for that peer).
	lostTo map[[2]uint64]bool
	// terms holds, per observer and group, the highest term it reported,
	// to check that no table ever goes back to an older term.
	terms map[[2]uint64]uint64
}

const simStep = 5 * time.Millisecond

func newSimNodes(t *testing.T) *simNodes {
	s := &simNodes{t: t, clock: env.NewManualClock(start), tables: map[uint64]*Table{},
		silent: map[uint64]bool{}, cutTo: map[[2]uint64]bool{}, lostTo: map[[2]uint64]bool{}, terms: map[[2]uint64]uint64{}}
	for n := uint64(1); n <= 3; n++ {
		s.tables[n] = newTestTable(t, n)
	}
	return s
}

// lead makes node's replica the ready leader of group in term.
func (s *simNodes) lead(node, group, term uint64) {
	s.t.Helper()
	if _, err := s.tables[node].SetLocal(group, rep(node), replica.Leadership{Term: term, Leader: rep(node), Ready: true}); err != nil {
		s.t.Fatal(err)
	}
}

// follow makes node's replica of group a follower of leader in term.
func (s *simNodes) follow(node, group, term, leader uint64) {
	s.t.Helper()
	if _, err := s.tables[node].SetLocal(group, rep(node), replica.Leadership{Term: term, Leader: rep(leader)}); err != nil {
		s.t.Fatal(err)
	}
}

// run advances the clock by d in steps, each node expiring its silent
// peers and sending its due heartbeat, encoded, to the others.
func (s *simNodes) run(d time.Duration) {
	s.t.Helper()
	for end := s.clock.Now().Add(d); s.clock.Now().Before(end); {
		s.clock.Advance(simStep)
		now := s.clock.Now()
		for from := uint64(1); from <= 3; from++ {
			s.tables[from].Expire(now)
			hb, ok := s.tables[from].Outgoing(now)
			if !ok || s.silent[from] {
				continue
			}
			for to := uint64(1); to <= 3; to++ {
				if to == from || s.silent[to] || s.cutTo[[2]uint64{from, to}] {
					continue
				}
				payload := transport.AppendNodeHeartbeat(nil, s.tables[from].ForPeer(hb, to, false))
				if !s.lostTo[[2]uint64{from, to}] {
					s.deliver(now, to, payload)
				}
			}
		}
		s.checkTermsMonotonic()
	}
}

func (s *simNodes) deliver(now time.Time, to uint64, payload []byte) {
	s.t.Helper()
	hb, err := transport.ParseNodeHeartbeat(payload)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.tables[to].Receive(now, hb); err != nil {
		s.t.Fatal(err)
	}
}

func (s *simNodes) checkTermsMonotonic() {
	s.t.Helper()
	for observer, tab := range s.tables {
		for group := uint64(1); group <= 3; group++ {
			_, _, term, _ := tab.Leader(group)
			key := [2]uint64{observer, group}
			if term < s.terms[key] {
				s.t.Fatalf("at %v node %d: group %d back from term %d to %d", s.clock.Now(), observer, group, s.terms[key], term)
			}
			s.terms[key] = term
		}
	}
}

// expect checks that every node in observers sees group led by leader
// (0: unknown) in term.
func (s *simNodes) expect(group, leader, term uint64, observers ...uint64) {
	s.t.Helper()
	want := leaderOf{leader, term, leader != 0}
	for _, o := range observers {
		if got := lookup(s.tables[o], group); got != want {
			s.t.Fatalf("at %v node %d: group %d %+v, want %+v", s.clock.Now().Sub(start), o, group, got, want)
		}
	}
}

func (s *simNodes) expectAlive(observer, node uint64, alive bool) {
	s.t.Helper()
	if got := s.tables[observer].Alive(node, s.clock.Now()); got != alive {
		s.t.Fatalf("at %v node %d: node %d alive %v, want %v", s.clock.Now().Sub(start), observer, node, got, alive)
	}
}

// TestThreeNodesSilenceAndReturn: three nodes learn each other's leaders;
// node 3 goes silent, is taken for dead and its group elects node 1; node
// 3 comes back still believing it leads in the old term, and nobody
// believes it.
func TestThreeNodesSilenceAndReturn(t *testing.T) {
	s := newSimNodes(t)
	cfg := s.tables[1].Config()
	for n := uint64(1); n <= 3; n++ {
		s.lead(n, n, 1)
		for other := uint64(1); other <= 3; other++ {
			if other != n {
				s.follow(other, n, 1, n)
			}
		}
	}
	s.run(simStep)
	for g := uint64(1); g <= 3; g++ {
		s.expect(g, g, 1, 1, 2, 3)
	}

	s.silent[3] = true
	s.run(cfg.LivenessTimeout - 2*simStep)
	s.expectAlive(1, 3, true)
	s.expect(3, 3, 1, 1, 2)
	s.run(2*simStep + cfg.Interval)
	s.expectAlive(1, 3, false)
	s.expectAlive(2, 3, false)
	s.expect(3, 0, 1, 1, 2)
	s.expect(1, 1, 1, 1, 2)

	// Group 3 elects node 1; node 1's delta reaches node 2 within a step.
	s.follow(2, 3, 2, 1)
	s.lead(1, 3, 2)
	s.run(cfg.DeltaGap + simStep)
	s.expect(3, 1, 2, 1, 2)

	// Node 3 returns, its first heartbeat a full list claiming group 3 in
	// term 1: stale. Node 3 learns term 2 from node 1.
	delete(s.silent, 3)
	s.run(cfg.Interval + simStep)
	s.expectAlive(1, 3, true)
	s.expectAlive(2, 3, true)
	s.expect(3, 1, 2, 1, 2, 3)
	s.expect(2, 2, 1, 1, 2, 3)

	// Node 3's raft steps down: its clear does not touch node 1's term.
	s.follow(3, 3, 2, 1)
	s.run(cfg.Interval)
	s.expect(3, 1, 2, 1, 2, 3)

	// A full interval later everyone still agrees, and every node is alive.
	s.run(cfg.FullInterval)
	for g := uint64(1); g <= 2; g++ {
		s.expect(g, g, 1, 1, 2, 3)
	}
	s.expect(3, 1, 2, 1, 2, 3)
	for o := uint64(1); o <= 3; o++ {
		for n := uint64(1); n <= 3; n++ {
			s.expectAlive(o, n, true)
		}
	}
}

// TestOneWayLossHeals: node 3's heartbeats to node 1 are lost while node
// 1's reach node 3, so only node 1 takes node 3 for dead. When the loss
// ends node 1 hears node 3 again by a delta and asks for its full list,
// which restores node 3's leader long before the next full interval.
func TestOneWayLossHeals(t *testing.T) {
	s := newSimNodes(t)
	cfg := s.tables[1].Config()
	s.lead(3, 3, 1)
	s.run(simStep)
	s.expect(3, 3, 1, 1, 2, 3)

	s.cutTo[[2]uint64{3, 1}] = true
	s.run(cfg.LivenessTimeout + simStep)
	s.expectAlive(1, 3, false)
	s.expectAlive(3, 1, true)
	s.expect(3, 0, 1, 1)
	s.expect(3, 3, 1, 2)

	delete(s.cutTo, [2]uint64{3, 1})
	s.run(2*cfg.Interval + simStep)
	s.expectAlive(1, 3, true)
	s.expect(3, 3, 1, 1, 2, 3)
}

// TestRestartLosingFirstFullList: node 3's process restarts within its
// incarnation (a new boot id, its sequence from 1) and its first
// heartbeats, the full ones, are lost. Its deltas still apply at once and
// keep it alive past the liveness timeout; its peers send it their full
// lists and get its own, long before the next full interval.
func TestRestartLosingFirstFullList(t *testing.T) {
	s := newSimNodes(t)
	cfg := s.tables[1].Config()
	s.lead(1, 1, 1)
	s.lead(3, 3, 1)
	s.run(cfg.FullInterval / 2)
	s.expect(3, 3, 1, 1, 2, 3)

	restarted, err := NewTable(Config{NodeID: 3, Incarnation: 1, BootID: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.tables[3] = restarted
	for g := uint64(1); g <= 3; g++ {
		delete(s.terms, [2]uint64{3, g}) // the new process starts knowing nothing
	}
	// Lost: its first heartbeat, and the next one, full to the peers it
	// heard meanwhile.
	s.lostTo[[2]uint64{3, 1}], s.lostTo[[2]uint64{3, 2}] = true, true
	s.run(cfg.Interval + simStep)
	clear(s.lostTo)

	s.lead(3, 3, 2)
	s.run(cfg.DeltaGap + simStep)
	s.expect(3, 3, 2, 1, 2, 3)
	s.run(2 * cfg.Interval)
	s.expect(1, 1, 1, 1, 2, 3)
	s.run(cfg.LivenessTimeout)
	for o := uint64(1); o <= 3; o++ {
		for n := uint64(1); n <= 3; n++ {
			s.expectAlive(o, n, true)
		}
	}
	s.expect(3, 3, 2, 1, 2, 3)
	s.expect(1, 1, 1, 1, 2, 3)
}
