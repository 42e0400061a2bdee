package replica_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/cairnlog/cairn/internal/sim"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3/raftpb"
)

// world is a simulated group of toy state machines with what the tests
// check about it: the proposals made and their outcome.
type world struct {
	t         testing.TB
	c         *sim.Cluster
	obs       *observer
	machines  map[uint64]*listMachine // the current incarnation of each node's
	proposals []*proposal
}

type proposal struct {
	node  uint64
	value string
	at    replica.ProposalPoint
	// acked: the proposing leader applied it where it was proposed.
	acked bool
}

// worldConfig is what a run varies.
type worldConfig struct {
	seed        uint64
	voters      []uint64
	syncDelayMs int64
}

// newWorld pins crypto/rand (raft's election jitter) to the seed, so the
// run replays exactly; t must not be parallel.
func newWorld(t *testing.T, wc worldConfig) *world {
	t.Helper()
	cryptotest.SetGlobalRandom(t, wc.seed)
	w := &world{t: t, obs: newObserver(), machines: map[uint64]*listMachine{}}
	c, err := sim.New(sim.Config{
		Seed:           wc.seed,
		Voters:         wc.voters,
		TickMs:         50,
		SyncDelayMaxMs: wc.syncDelayMs,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewStateMachine: func(id uint64) replica.StateMachine {
			m := newListMachine(id, w.obs)
			w.machines[id] = m
			return m
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.c = c
	return w
}

// propose proposes value on node and records the proposal; a proposal
// raft dropped gives its offset back.
func (w *world) propose(node uint64, value string) (replica.ProposalPoint, error) {
	var at replica.ProposalPoint
	err := w.c.Do(node, func(r *replica.Replica) error {
		var err error
		at, err = r.Propose(replica.Proposal{Data: []byte(value)})
		if errors.Is(err, replica.ErrProposalDropped) {
			w.machines[node].unstamp()
		}
		return err
	})
	if err == nil {
		w.proposals = append(w.proposals, &proposal{node: node, value: value, at: at})
	}
	return at, err
}

// outcome says what became of p as its proposer sees it, marking it acked
// when the proposer applied it at its point.
func (w *world) outcome(p *proposal) string {
	if p.acked {
		return "acked"
	}
	m := w.machines[p.node]
	e, ok := m.entries[p.at.Index]
	switch {
	case !ok:
		return "pending"
	case e.term == p.at.Term:
		p.acked = true
		return "acked"
	default:
		return fmt.Sprintf("lost (term %d at %d)", e.term, p.at.Index)
	}
}

func (w *world) settled() bool {
	for _, p := range w.proposals {
		if w.outcome(p) == "pending" {
			return false
		}
	}
	return true
}

// run advances the simulation, failing the test on a driver error.
func (w *world) run(ms int64) {
	w.t.Helper()
	if err := w.c.RunFor(ms); err != nil {
		w.t.Fatal(err)
	}
	w.updateAcks()
}

func (w *world) runUntil(cond func() bool, maxMs int64) bool {
	w.t.Helper()
	ok, err := w.c.RunUntil(func() bool { w.updateAcks(); return cond() }, maxMs)
	if err != nil {
		w.t.Fatal(err)
	}
	return ok
}

func (w *world) updateAcks() {
	for _, p := range w.proposals {
		w.outcome(p)
	}
}

// check returns the violated properties: one leader per term, one entry
// per index across replicas (identical committed prefixes), applied
// indexes without gaps or repeats per incarnation, and every acked
// proposal present where it was acked on every live replica that applied
// that far.
func (w *world) check() []string {
	v := slices.Clone(w.obs.violations)
	for _, id := range w.c.IDs() {
		if err := w.c.Node(id).Replica.Err(); err != nil && !errors.Is(err, replica.ErrSyncFailed) {
			v = append(v, fmt.Sprintf("replica %d failed: %v", id, err))
		}
	}
	for _, p := range w.proposals {
		if !p.acked {
			continue
		}
		for _, id := range w.c.IDs() {
			m := w.machines[id]
			if m.applied < p.at.Index {
				continue
			}
			e, ok := m.entries[p.at.Index]
			if !ok {
				continue // below a snapshot this incarnation started from
			}
			_, value, err := decodeValue([]byte(e.data))
			if e.term != p.at.Term || err != nil || value != p.value {
				v = append(v, fmt.Sprintf("acked %q at %d/%d: replica %d has %q in term %d", p.value, p.at.Index, p.at.Term, id, e.data, e.term))
			}
		}
	}
	return v
}

// state describes every node in one line each.
func (w *world) state() string {
	var b strings.Builder
	for _, id := range w.c.IDs() {
		n := w.c.Node(id)
		if !n.Up {
			fmt.Fprintf(&b, "%d: down\n", id)
			continue
		}
		l := n.Replica.Leadership()
		last, _ := n.Storage.LastIndex()
		ready := ""
		if l.Ready {
			ready = " ready"
		}
		m := w.machines[id]
		fmt.Fprintf(&b, "%d: term=%d lead=%d%s applied=%d last=%d values=[%s]\n", id, l.Term, l.Leader, ready, m.applied, last, strings.Join(m.values, " "))
	}
	return b.String()
}

// confChange proposes changes ("l4", "v4 r3": raft's notation; "" leaves
// a joint configuration) on the leader. An explicit change stays joint
// until a change with no changes leaves it.
func (w *world) confChange(leader uint64, changes string, explicit bool) error {
	ccs, err := raftpb.ConfChangesFromString(changes)
	if err != nil {
		return err
	}
	cc := &raftpb.ConfChangeV2{Changes: ccs}
	if explicit {
		cc.Transition = raftpb.ConfChangeTransition_ConfChangeTransitionJointExplicit.Enum()
	}
	return w.c.Do(leader, func(r *replica.Replica) error { return r.ProposeConfChange(cc) })
}

// compact snapshots node's storage at its applied index with the toy
// state machine's values, dropping the log below.
func (w *world) compact(node uint64) error {
	n, m := w.c.Node(node), w.machines[node]
	cs := n.Replica.ConfState()
	return n.Storage.CreateSnapshot(m.applied, cs, m.snapshotData())
}
