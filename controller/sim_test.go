package controller

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"testing/cryptotest"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/internal/sim"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
)

var (
	simSeedFlag  = flag.Int64("controller.seed", -1, "run TestSimulatedMetaGroup for this seed only (replays a failure)")
	simSeedsFlag = flag.Int("controller.seeds", 30, "how many seeds TestSimulatedMetaGroup runs")
)

const (
	// simChaosMs is how long faults, crashes and compactions go on per seed.
	simChaosMs = 15_000
	// simHealBoundMs bounds the time from the heal to every node applying
	// a new command: a few election timeouts.
	simHealBoundMs = 10_000
)

// TestSimulatedMetaGroup runs the controller's state machine in three
// replicas of the simulator (seeded drop, duplication, delay, isolation,
// crashes losing unsynced writes, compactions behind snapshots of the
// state, restarts restoring from them), proposing commands on whichever
// node leads, and checks: no replica fails (an entry stamped at a wrong
// offset would fail it), no producer id block is acknowledged twice, every
// acknowledged topic and block is in the final state, and after the heal
// every node applies a new command and holds byte-identical state.
func TestSimulatedMetaGroup(t *testing.T) {
	var seeds []uint64
	if *simSeedFlag >= 0 {
		seeds = append(seeds, uint64(*simSeedFlag))
	} else {
		for s := range *simSeedsFlag {
			seeds = append(seeds, uint64(s))
		}
	}
	var restores, lost int
	for _, seed := range seeds {
		run, failure := simulateMeta(t, seed)
		t.Log(run.summary)
		if failure != "" {
			t.Fatalf("seed %d: %s\nreplay: go test ./controller -run TestSimulatedMetaGroup -controller.seed=%d", seed, failure, seed)
		}
		restores, lost = restores+run.restores, lost+run.lost
	}
	// The runs must reach the paths they are here for.
	if len(seeds) >= 10 && (restores == 0 || lost == 0) {
		t.Fatalf("over %d seeds: %d snapshots restored, %d proposals lost to a new leader", len(seeds), restores, lost)
	}
}

// simRun is what one seed's run did.
type simRun struct {
	summary        string
	restores, lost int
}

// TestSimulatedMetaGroupReplays: a seed gives the same run twice, down to
// the final state's bytes.
func TestSimulatedMetaGroupReplays(t *testing.T) {
	a, failA := simulateMeta(t, 5)
	b, failB := simulateMeta(t, 5)
	if failA != "" || failB != "" {
		t.Fatalf("seed 5 failed: %s%s", failA, failB)
	}
	if a.summary != b.summary {
		t.Fatalf("seed 5 ran two ways:\n%s\n%s", a.summary, b.summary)
	}
}

// metaWorld is a simulated meta group and what the test saw acknowledged.
type metaWorld struct {
	t        *testing.T
	rng      *rand.Rand
	c        *sim.Cluster
	voters   []uint64
	ctrls    map[uint64]*Controller // the state machine of each node's current start
	pending  []*simProposal
	blocks   map[int64]bool // acknowledged producer id blocks
	topics   []string       // acknowledged topics
	created  int            // topics proposed (names are never reused)
	restarts int
	compacts int
	acked    int
	lost     int // proposals answered as lost to a new leader
	started  []*Controller
}

// restores counts the snapshots restored by every start of every node.
func (w *metaWorld) restores() int {
	n := 0
	for _, c := range w.started {
		n += c.Restores()
	}
	return n
}

type simProposal struct {
	w    *waiter
	ctl  *Controller // the state machine it waits in
	kind string
	name string
}

func simulateMeta(t *testing.T, seed uint64) (run simRun, failure string) {
	cryptotest.SetGlobalRandom(t, seed)
	w := &metaWorld{t: t, rng: rand.New(rand.NewPCG(seed, 0x3e7a)), ctrls: map[uint64]*Controller{}, blocks: map[int64]bool{}}
	for node := int32(1); node <= 3; node++ {
		w.voters = append(w.voters, meta.ReplicaID(node, 1))
	}
	c, err := sim.New(sim.Config{
		Seed: seed, Voters: w.voters, TickMs: 50, SyncDelayMaxMs: w.rng.Int64N(40),
		// The bootstrap snapshot carries no state here: every machine
		// starts at it, so raft starts applying after it.
		Replica: replica.Config{Applied: bootstrapIndex},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewStateMachine: func(id uint64) replica.StateMachine {
			ctl := simController(t, w.voters)
			w.ctrls[id] = ctl
			w.started = append(w.started, ctl)
			return (*stateMachine)(ctl)
		},
	})
	if err != nil {
		return simRun{}, err.Error()
	}
	w.c = c
	faults := sim.Faults{DropPercent: w.rng.IntN(10), DuplicatePercent: w.rng.IntN(10), DelayMinMs: 1, DelayMaxMs: 1 + w.rng.Int64N(30)}
	if err := c.Net.SetFaults(faults); err != nil {
		return simRun{}, err.Error()
	}
	for c.NowMs < simChaosMs {
		if err := w.act(); err != nil {
			return simRun{}, fmt.Sprintf("at %d ms: %v", c.NowMs, err)
		}
		if err := c.RunFor(5 + w.rng.Int64N(200)); err != nil {
			return simRun{}, fmt.Sprintf("at %d ms: %v", c.NowMs, err)
		}
		if err := w.collect(); err != nil {
			return simRun{}, fmt.Sprintf("at %d ms: %v", c.NowMs, err)
		}
	}
	state, err := w.heal()
	if err != nil {
		return simRun{}, err.Error()
	}
	run.restores, run.lost = w.restores(), w.lost
	run.summary = fmt.Sprintf("seed %d: %d acked, %d lost, %d topics, %d restarts, %d compactions, %d restores, state %x",
		seed, w.acked, w.lost, len(w.topics), w.restarts, w.compacts, run.restores, sha256.Sum256(state))
	return run, ""
}

// simController is a state machine side of a Controller at the bootstrap
// state of three nodes, on a clock that never moves (entry timestamps are
// all equal, so runs replay byte for byte).
func simController(t *testing.T, voters []uint64) *Controller {
	var brokers []*metav1.Broker
	for _, v := range voters {
		brokers = append(brokers, &metav1.Broker{NodeId: meta.NodeOf(v)})
	}
	st, err := meta.Bootstrap("sim", brokers, bootstrapIndex)
	if err != nil {
		t.Fatal(err)
	}
	m, err := meta.New(st)
	if err != nil {
		t.Fatal(err)
	}
	e := env.Env{Clock: env.NewManualClock(time.Unix(0, 0)), Rand: env.NewSeededRand(1), FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return &Controller{
		e: e, cfg: Config{SnapshotEntries: 1 << 62}.withDefaults(),
		machine: m, applied: bootstrapIndex, changed: make(chan struct{}), leaderMoved: make(chan struct{}),
		waiters: map[uint64]*waiter{}, snapshotDue: make(chan struct{}, 1),
	}
}

// act does one random thing: mostly a proposal on the leader, sometimes a
// crash, a restart, a compaction, an isolation or a heal.
func (w *metaWorld) act() error {
	switch p := w.rng.IntN(100); {
	case p < 70:
		return w.propose()
	case p < 78:
		w.crashOne()
	case p < 86:
		return w.restartOne()
	case p < 94:
		return w.compactOne()
	case p < 97:
		w.c.Net.Isolate(w.voters[w.rng.IntN(len(w.voters))], w.voters)
	default:
		w.c.Net.Heal()
	}
	return nil
}

// propose proposes a random command on the ready leader, as proposeLocal
// does: the waiter is registered in the same call.
func (w *metaWorld) propose() error {
	lead, ok := w.c.Leader()
	if !ok {
		return nil
	}
	ctl := w.ctrls[lead]
	sp := &simProposal{w: &waiter{done: make(chan waitResult, 1)}, ctl: ctl}
	var cmd *metav1.Command
	switch k := w.rng.IntN(3); {
	case k == 0 || len(w.topics) == 0 && k == 2:
		sp.kind = "allocate"
		cmd = allocate(meta.NodeOf(lead))
	case k == 1:
		sp.kind, sp.name = "topic", fmt.Sprintf("t%d", w.created)
		w.created++
		sets, err := meta.Place(ctl.State(), sp.name, 0, 1+int32(w.rng.IntN(3)), 0)
		if err != nil {
			return err
		}
		id := sha256.Sum256([]byte(sp.name))
		cmd = &metav1.Command{Command: &metav1.Command_CreateTopic{CreateTopic: &metav1.CreateTopic{Name: sp.name, Id: id[:16], Partitions: sets}}}
	default:
		sp.kind = "config"
		cmd = setConfigs(w.topics[w.rng.IntN(len(w.topics))], map[string]string{"retention.ms": fmt.Sprint(w.rng.IntN(1000) + 1)})
	}
	data, err := meta.EncodeCommand(cmd)
	if err != nil {
		return err
	}
	err = w.c.Do(lead, func(r *replica.Replica) error {
		at, err := r.Propose(replica.Proposal{Data: data})
		switch {
		case errors.Is(err, replica.ErrProposalDropped):
			ctl.prepNext--
		case err == nil:
			sp.w.term = at.Term
			ctl.mu.Lock()
			ctl.waiters[at.Index] = sp.w
			ctl.mu.Unlock()
		}
		return err
	})
	if errors.Is(err, replica.ErrNotLeader) || errors.Is(err, replica.ErrProposalDropped) {
		return nil
	}
	if err == nil {
		w.pending = append(w.pending, sp)
	}
	return err
}

// collect takes the answered proposals: an acknowledged block must be new.
func (w *metaWorld) collect() error {
	kept := w.pending[:0]
	for _, sp := range w.pending {
		select {
		case r := <-sp.w.done:
			if r.err != nil {
				if errors.Is(r.err, errLost) {
					w.lost++
				}
				continue // lost to a new leader or jumped over: not acknowledged
			}
			if err := meta.ResultError(r.result); err != nil {
				if sp.kind == "topic" {
					return fmt.Errorf("topic %s refused: %w", sp.name, err)
				}
				continue
			}
			w.acked++
			switch sp.kind {
			case "allocate":
				if w.blocks[r.result.FirstProducerId] {
					return fmt.Errorf("producer id block %d acknowledged twice", r.result.FirstProducerId)
				}
				w.blocks[r.result.FirstProducerId] = true
			case "topic":
				w.topics = append(w.topics, sp.name)
			}
		default:
			if w.live(sp.ctl) {
				kept = append(kept, sp)
			} // else its node crashed: never answered, not acknowledged
		}
	}
	w.pending = kept
	for _, id := range w.voters {
		if n := w.c.Node(id); n.Up && n.Replica.Err() != nil {
			return fmt.Errorf("replica %x failed: %w", id, n.Replica.Err())
		}
	}
	return nil
}

// live reports whether ctl is the state machine of a node that is up.
func (w *metaWorld) live(ctl *Controller) bool {
	for _, id := range w.voters {
		if w.ctrls[id] == ctl && w.c.Node(id).Up {
			return true
		}
	}
	return false
}

func (w *metaWorld) crashOne() {
	down := 0
	for _, id := range w.voters {
		if !w.c.Node(id).Up {
			down++
		}
	}
	if id := w.voters[w.rng.IntN(len(w.voters))]; down == 0 && w.c.Node(id).Up {
		w.c.Crash(id) // its waiters die with it, unanswered
	}
}

func (w *metaWorld) restartOne() error {
	for _, id := range w.voters {
		if !w.c.Node(id).Up {
			w.restarts++
			return w.c.Restart(id)
		}
	}
	return nil
}

// compactOne compacts a node's log at its applied index behind a snapshot
// of its state, as the snapshot loop does.
func (w *metaWorld) compactOne() error {
	id := w.voters[w.rng.IntN(len(w.voters))]
	n := w.c.Node(id)
	if !n.Up {
		return nil
	}
	ctl := w.ctrls[id]
	return w.c.Do(id, func(r *replica.Replica) error {
		first, _ := n.Storage.FirstIndex()
		idx := r.Applied()
		if idx < first+3 {
			return nil
		}
		ctl.mu.Lock()
		st, err := ctl.machine.Snapshot()
		next := ctl.appliedNext
		ctl.mu.Unlock()
		if err != nil {
			return err
		}
		w.compacts++
		return n.Storage.CreateSnapshot(idx, r.ConfState(), encodeSnapshot(next, st))
	})
}

// heal ends the faults, restarts every node, has a new command applied
// everywhere and checks the states agree and hold what was acknowledged.
func (w *metaWorld) heal() ([]byte, error) {
	w.c.Net.Heal()
	if err := w.c.Net.SetFaults(sim.Faults{DelayMinMs: 1, DelayMaxMs: 5}); err != nil {
		return nil, err
	}
	for _, id := range w.voters {
		if !w.c.Node(id).Up {
			if err := w.c.Restart(id); err != nil {
				return nil, err
			}
		}
	}
	start, ackedBefore := w.c.NowMs, w.acked
	for w.acked == ackedBefore {
		if w.c.NowMs-start > simHealBoundMs {
			return nil, fmt.Errorf("no command acknowledged %d ms after the heal (%d pending)", simHealBoundMs, len(w.pending))
		}
		if len(w.pending) == 0 {
			if err := w.propose(); err != nil {
				return nil, err
			}
		}
		if err := w.c.RunFor(50); err != nil {
			return nil, err
		}
		if err := w.collect(); err != nil {
			return nil, err
		}
	}
	target := w.leaderApplied()
	ok, err := w.c.RunUntil(func() bool {
		for _, id := range w.voters {
			if w.ctrls[id].Applied() < target {
				return false
			}
		}
		return true
	}, simHealBoundMs)
	if err != nil || !ok {
		return nil, fmt.Errorf("nodes not caught up to %d after the heal: %v", target, err)
	}
	return w.checkStates()
}

func (w *metaWorld) leaderApplied() uint64 {
	lead, ok := w.c.Leader()
	if !ok {
		return 0
	}
	return w.ctrls[lead].Applied()
}

// checkStates compares the nodes' states at the highest applied index
// (after letting every node reach it) and looks for what was acknowledged.
func (w *metaWorld) checkStates() ([]byte, error) {
	var want []byte
	var top uint64
	for _, id := range w.voters {
		top = max(top, w.ctrls[id].Applied())
	}
	if ok, err := w.c.RunUntil(func() bool {
		for _, id := range w.voters {
			if w.ctrls[id].Applied() < top {
				return false
			}
		}
		return true
	}, simHealBoundMs); err != nil || !ok {
		return nil, fmt.Errorf("nodes not at %d: %v", top, err)
	}
	for _, id := range w.voters {
		ctl := w.ctrls[id]
		if ctl.Applied() != top {
			continue // applied past it meanwhile: compared at the next check
		}
		got, err := ctl.Snapshot()
		if err != nil {
			return nil, err
		}
		if want == nil {
			want = got
		} else if string(got) != string(want) {
			return nil, fmt.Errorf("replica %x: state differs at %d", id, top)
		}
	}
	st, err := meta.UnmarshalState(want)
	if err != nil {
		return nil, err
	}
	for first := range w.blocks {
		if first >= st.NextProducerId {
			return nil, fmt.Errorf("acknowledged block %d not below next producer id %d", first, st.NextProducerId)
		}
	}
	for _, name := range w.topics {
		if _, ok := findTopic(st, name); !ok {
			return nil, fmt.Errorf("acknowledged topic %s missing", name)
		}
	}
	return want, nil
}
