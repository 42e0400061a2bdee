package replica_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/sim"
	"github.com/cairnlog/cairn/replica"
)

var (
	seedFlag  = flag.Int64("replica.seed", -1, "run TestSimulation for this seed only (replays a failure)")
	seedsFlag = flag.Int("replica.seeds", 100, "how many seeds TestSimulation runs")
)

const (
	// chaosMs is how long faults, partitions and crashes go on per seed.
	chaosMs = 20_000
	// healBoundMs bounds the time from the heal to an acked proposal and to
	// every replica applying it: a few election timeouts (1.2 s at most).
	healBoundMs = 10_000
)

// TestSimulation runs seeded random histories of a group of three or five
// replicas under drop, duplication, delay, partitions, crashes losing
// unsynced writes, leader transfers, compactions, membership changes
// (learners added up to seven nodes, promoted, voters removed down to
// three) and ReadIndex calls, then
// heals everything and checks: at most one leader per term, identical
// committed prefixes, applied indexes without gaps per replica, every acked
// proposal present at its index on every replica that applied that far,
// every read answered at an index covering what was acked before it was
// asked, and progress (a new proposal acked, every member of the final
// configuration caught up) within healBoundMs.
func TestSimulation(t *testing.T) {
	seeds := make([]uint64, 0, *seedsFlag)
	if *seedFlag >= 0 {
		seeds = append(seeds, uint64(*seedFlag))
	} else {
		for s := range *seedsFlag {
			seeds = append(seeds, uint64(s))
		}
	}
	for _, seed := range seeds {
		summary, msg := simulate(t, seed)
		t.Log(strings.SplitN(summary, "\n", 2)[0])
		if msg != "" {
			t.Fatalf("seed %d: %s\nreplay: go test ./replica -run TestSimulation -replica.seed=%d", seed, msg, seed)
		}
	}
}

// TestSimulationReplays: a seed gives the same history twice over, down to
// every proposal's outcome and the network's counts, so a failing seed can
// be replayed and debugged.
func TestSimulationReplays(t *testing.T) {
	a, failA := simulate(t, 11)
	b, failB := simulate(t, 11)
	if failA != "" || failB != "" {
		t.Fatalf("seed 11 failed: %s%s", failA, failB)
	}
	if a != b {
		t.Fatalf("seed 11 ran two ways:\n%s\n----\n%s", a, b)
	}
}

// simulate runs one seed and returns a summary of the run and a
// description of the first failure, "" if none.
func simulate(t *testing.T, seed uint64) (summary, failure string) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	voters := []uint64{1, 2, 3}
	if rng.IntN(3) == 0 {
		voters = append(voters, 4, 5)
	}
	// Mostly fast syncs; some runs with slow ones, so crashes lose more.
	syncDelayMs := rng.Int64N(20)
	if rng.IntN(4) == 0 {
		syncDelayMs = rng.Int64N(200)
	}
	w := newWorld(t, worldConfig{seed: seed, voters: voters, syncDelayMs: syncDelayMs})
	f := sim.Faults{DropPercent: rng.IntN(10), DuplicatePercent: rng.IntN(10), DelayMinMs: 1, DelayMaxMs: 1 + rng.Int64N(30)}
	if err := w.c.Net.SetFaults(f); err != nil {
		return "", err.Error()
	}
	h := &history{w: w, rng: rng, voters: voters, readFloors: map[string]uint64{}}
	for w.c.NowMs < chaosMs {
		if err := h.act(); err != nil {
			return "", fmt.Sprintf("at %d ms: %v\n%s", w.c.NowMs, err, w.state())
		}
		if err := w.c.RunFor(10 + rng.Int64N(300)); err != nil {
			return "", fmt.Sprintf("at %d ms: %v", w.c.NowMs, err)
		}
		w.updateAcks()
		if err := h.checkReads(); err != nil {
			return "", err.Error()
		}
	}
	if err := h.heal(); err != nil {
		return "", err.Error()
	}
	if msg := h.progress(); msg != "" {
		return "", msg + "\n" + w.state()
	}
	if v := w.check(); len(v) > 0 {
		return "", "properties violated:\n" + strings.Join(v, "\n")
	}
	acked := 0
	for _, p := range w.proposals {
		if p.acked {
			acked++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d voters, %d proposals, %d acked, %d reads answered, %d terms led, %d restarts, %d of %d membership changes proposed, %d nodes, network %+v\n",
		seed, len(voters), len(w.proposals), acked, h.reads, len(w.obs.leaders), h.restarts, h.changesProposed, h.changes, len(w.c.IDs()), w.c.Net.Stats())
	for _, p := range w.proposals {
		fmt.Fprintf(&b, "%s@%d/%d:%s ", p.value, p.at.Index, p.at.Term, w.outcome(p))
	}
	return b.String(), ""
}

// history draws the random actions of one run.
type history struct {
	w        *world
	rng      *rand.Rand
	voters   []uint64
	proposed int
	restarts int
	// changes counts membership changes tried, changesProposed those the
	// leader took.
	changes, changesProposed int
	// readFloors: read context → the highest index acked when it was asked.
	readFloors map[string]uint64
	reads      int
}

func (h *history) ackedIndex() uint64 {
	var top uint64
	for _, p := range h.w.proposals {
		if p.acked {
			top = max(top, p.at.Index)
		}
	}
	return top
}

// checkReads compares the reads answered since the last call with their
// floors.
func (h *history) checkReads() error {
	for _, rs := range h.w.c.Reads {
		h.reads++
		if floor := h.readFloors[string(rs.RequestCtx)]; rs.Index < floor {
			return fmt.Errorf("read %s answered at index %d, below %d acked before it", rs.RequestCtx, rs.Index, floor)
		}
	}
	h.w.c.Reads = nil
	return nil
}

// pick returns any node, removed and never-admitted ones included.
func (h *history) pick() uint64 { ids := h.w.c.IDs(); return ids[h.rng.IntN(len(ids))] }

func (h *history) down() int {
	n := 0
	for _, id := range h.w.c.IDs() {
		if !h.w.c.Node(id).Up {
			n++
		}
	}
	return n
}

// nodesMax bounds the nodes a run adds to: learners join up to it.
const nodesMax = 7

// changeMembers proposes one membership change on the leader: promote a
// learner, add a new node as a learner, or remove a voter (keeping three).
// A refused or lost change is a normal outcome.
func (h *history) changeMembers() error {
	c := h.w.c
	leader, ok := c.Leader()
	if !ok {
		return nil
	}
	cs := c.Node(leader).Replica.ConfState()
	var change string
	switch r := h.rng.IntN(3); {
	case r == 0 && len(cs.GetLearners()) > 0:
		change = fmt.Sprintf("v%d", cs.GetLearners()[h.rng.IntN(len(cs.GetLearners()))])
	case r == 1 && len(c.IDs()) < nodesMax:
		id := uint64(len(c.IDs()) + 1)
		if err := c.AddNode(id, replica.NewMemStorage()); err != nil {
			return err
		}
		change = fmt.Sprintf("l%d", id)
	case len(cs.GetVoters()) > 3:
		change = fmt.Sprintf("r%d", cs.GetVoters()[h.rng.IntN(len(cs.GetVoters()))])
	default:
		return nil
	}
	h.changes++
	err := h.w.confChange(leader, change, false)
	switch {
	case err == nil:
		h.changesProposed++
	case errors.Is(err, replica.ErrConfChangePending), errors.Is(err, replica.ErrConfChangeRefused),
		errors.Is(err, replica.ErrNotLeader), errors.Is(err, replica.ErrProposalDropped):
	default:
		return err
	}
	return nil
}

// members are the voters and learners of the leader's configuration.
func (h *history) members(leader uint64) []uint64 {
	cs := h.w.c.Node(leader).Replica.ConfState()
	return append(slices.Clone(cs.GetVoters()), cs.GetLearners()...)
}

// act performs one random action; proposals are the most frequent.
func (h *history) act() error {
	c := h.w.c
	switch r := h.rng.IntN(102); {
	case r < 55:
		leader, ok := c.Leader()
		if !ok {
			return nil
		}
		for range 1 + h.rng.IntN(5) {
			h.proposed++
			_, err := h.w.propose(leader, fmt.Sprintf("v%d", h.proposed))
			if err != nil && err != replica.ErrProposalDropped && err != replica.ErrNotLeader {
				return err
			}
		}
	case r < 60:
		// A linearizable read on any live replica: whatever index it is
		// answered with must cover every proposal acked before it was asked.
		if id := h.pick(); c.Node(id).Up {
			ctx := fmt.Sprintf("read%d", len(h.readFloors))
			h.readFloors[ctx] = h.ackedIndex()
			return c.Do(id, func(r *replica.Replica) error { r.ReadIndex([]byte(ctx)); return nil })
		}
	case r < 68:
		c.Net.Isolate(h.pick(), c.IDs())
	case r < 74:
		ids := slices.Clone(c.IDs())
		h.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		cut := 1 + h.rng.IntN(len(ids)-1)
		c.Net.Split(ids[:cut], ids[cut:])
	case r < 84:
		c.Net.Heal()
	case r < 89:
		// Crash any replica, even past a majority: no acked entry may be
		// lost, since acks wait for a quorum's syncs.
		if id := h.pick(); c.Node(id).Up && h.down() < len(c.IDs()) {
			c.Crash(id)
		}
	case r < 95:
		for _, id := range c.IDs() {
			if !c.Node(id).Up {
				h.restarts++
				return c.Restart(id)
			}
		}
	case r < 98:
		if leader, ok := c.Leader(); ok {
			to := h.pick()
			return c.Do(leader, func(r *replica.Replica) error { r.TransferLeader(to); return nil })
		}
	case r < 101:
		return h.changeMembers()
	default:
		if id := h.pick(); c.Node(id).Up {
			first, _ := c.Node(id).Storage.FirstIndex()
			if h.w.machines[id].applied >= first {
				return h.w.compact(id)
			}
		}
	}
	return nil
}

// heal ends the faults: every link up, a reliable network, every replica
// restarted.
func (h *history) heal() error {
	c := h.w.c
	c.Net.Heal()
	if err := c.Net.SetFaults(sim.Faults{DelayMinMs: 1, DelayMaxMs: 5}); err != nil {
		return err
	}
	for _, id := range c.IDs() {
		if !c.Node(id).Up {
			if err := c.Restart(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// progress proposes on whichever replica leads until a proposal is acked,
// then waits for every replica to apply as far as the leader: both within
// healBoundMs of the heal.
func (h *history) progress() string {
	w, c := h.w, h.w.c
	deadline := c.NowMs + healBoundMs
	var final *proposal
	acked := func() bool {
		if final != nil {
			switch w.outcome(final) {
			case "acked":
				return true
			case "pending":
				// Still the proposer's term: wait. Otherwise the entry may
				// have been cut off past the new log's end, where it stays
				// pending until the log grows: propose again.
				if l := c.Node(final.node).Replica.Leadership(); l.Term == final.at.Term && l.Leader == final.node {
					return false
				}
			}
		}
		// Voters that joined empty need a snapshot naming them before they
		// count towards a quorum, and a leader that is not ready yet may be
		// the one to send it: every node compacts, as nodes do now and then.
		for _, id := range c.IDs() {
			snap, _ := c.Node(id).Storage.Snapshot()
			if c.Node(id).Up && w.machines[id].applied > snap.GetMetadata().GetIndex() {
				if err := w.compact(id); err != nil {
					w.t.Fatalf("compact %d: %v", id, err)
				}
			}
		}
		if leader, ok := c.Leader(); ok {
			if _, err := w.propose(leader, "final"); err == nil {
				final = w.proposals[len(w.proposals)-1]
			}
		}
		return false
	}
	if !w.runUntil(acked, deadline-c.NowMs) {
		return fmt.Sprintf("no proposal acked within %d ms of the heal", healBoundMs)
	}
	// A learner that joined needs a snapshot whose configuration names it;
	// the leader's last compaction may predate it. The proposer may have
	// been removed since: compact whoever leads now.
	var leader uint64
	if !w.runUntil(func() bool { var ok bool; leader, ok = c.Leader(); return ok }, deadline-c.NowMs) {
		return fmt.Sprintf("no leader within %d ms of the heal", healBoundMs)
	}
	if err := w.compact(leader); err != nil {
		return fmt.Sprintf("compact the leader %d: %v", leader, err)
	}
	members := h.members(leader)
	caughtUp := func() bool {
		for _, id := range members {
			if w.machines[id].applied < final.at.Index {
				return false
			}
		}
		return true
	}
	if !w.runUntil(caughtUp, deadline-c.NowMs) {
		return fmt.Sprintf("members %v not caught up with index %d within %d ms of the heal", members, final.at.Index, healBoundMs)
	}
	want := w.machines[leader].values
	for _, id := range members {
		if got := w.machines[id].values; !slices.Equal(got, want) {
			return fmt.Sprintf("replica %d holds %v, the leader %v", id, got, want)
		}
	}
	return ""
}
