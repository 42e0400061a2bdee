package partition

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/internal/sim"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/streams"
)

var (
	simSeedFlag  = flag.Int64("partition.seed", -1, "run TestReplicatedSimulation for this seed only (replays a failure)")
	simSeedsFlag = flag.Int("partition.seeds", 20, "how many seeds TestReplicatedSimulation runs")
)

// simProducer is an idempotent producer that retries its in-flight batch
// on whichever replica leads until it is acknowledged (acks=all).
type simProducer struct {
	pid      int64
	next     int32 // sequence of the in-flight batch, or of the next one
	records  int
	inflight *simAppend
	// acked maps each acknowledged sequence to the offset it was acked at.
	acked map[int32]int64
}

type simAppend struct {
	node uint64
	res  AppendResult
}

// TestReplicatedSimulation runs idempotent producers against 3 replicas
// under a lossy, reordering network, crashes, restarts and isolated
// leaders, then checks: every replica ends with the same batches; each
// producer's batches are there once each, in sequence order, acknowledged
// ones at the offset they were acknowledged at; no high watermark ever
// moved back (checked after every simulated event).
func TestReplicatedSimulation(t *testing.T) {
	var seeds []uint64
	if *simSeedFlag >= 0 {
		seeds = append(seeds, uint64(*simSeedFlag))
	} else {
		for s := range *simSeedsFlag {
			seeds = append(seeds, uint64(s)+100)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runReplicatedSeed(t, seed) })
	}
}

func runReplicatedSeed(t *testing.T, seed uint64) {
	g := newGroup(t, seed, []uint64{1, 2, 3}, func(c *Config) {
		c.Storage.SegmentBytes, c.CheckpointIntervalMs = 2000, 300
		c.DeleteSegments, c.RetentionBytes = true, 6000
	})
	rng := rand.New(rand.NewPCG(seed, 0xfa17))
	if err := g.c.Net.SetFaults(sim.Faults{DropPercent: 3, DuplicatePercent: 3, DelayMinMs: 1, DelayMaxMs: 15}); err != nil {
		t.Fatal(err)
	}
	producers := []*simProducer{{pid: 1, acked: map[int32]int64{}}, {pid: 2, acked: map[int32]int64{}}}
	for range 80 {
		crashes := g.crashes
		g.chaos(rng)
		if g.crashes != crashes {
			g.checkQuorum(producers)
		}
		if l, ok := g.c.Leader(); ok {
			for _, pr := range producers {
				g.step(pr, l, rng)
			}
		}
		g.runFor(20 + rng.Int64N(200))
		g.checkHWMs()
	}
	g.c.Net.Heal()
	if err := g.c.Net.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range g.c.IDs() {
		if !g.c.Node(id).Up {
			g.restart(id)
		}
	}
	// Every in-flight batch is settled, then a last batch per producer
	// commits everything before it.
	var end int64
	for _, pr := range producers {
		g.drive(pr, rng)
		pr.inflight, pr.records = &simAppend{node: 0}, 1
		g.drive(pr, rng)
		end = max(end, pr.acked[pr.next-1]+1)
	}
	g.converge(end)
	var start int64
	for _, p := range g.parts {
		start = max(start, p.LogStartOffset())
	}
	g.sameEverywhereFrom(start)
	checkProducers(t, g.exposedUpTo(end), producers)
}

// checkQuorum checks that each acknowledged batch is durable on a quorum:
// in the Raft log a power cut of the node now would leave, on two of the
// three nodes, down ones included. A batch below a node's log start counts
// as held there: retention or a snapshot removed it after it committed.
func (g *group) checkQuorum(producers []*simProducer) {
	g.t.Helper()
	type durable struct {
		start   int64
		batches map[int64]batch.Header
	}
	var nodes []durable
	for _, id := range g.c.IDs() {
		start, batches := g.durableBatches(id)
		nodes = append(nodes, durable{start, batches})
	}
	for _, pr := range producers {
		for seq, off := range pr.acked {
			n := 0
			for _, d := range nodes {
				h, ok := d.batches[off]
				if off < d.start || (ok && h.ProducerID == pr.pid && h.BaseSequence == seq) {
					n++
				}
			}
			if n < 2 {
				g.t.Fatalf("producer %d sequence %d, acknowledged at offset %d, is durable on %d nodes", pr.pid, seq, off, n)
			}
		}
	}
}

// durableBatches opens what a power cut of node id now would leave, as
// its Raft log, and returns its log start and the headers of the batches
// in its segments.
func (g *group) durableBatches(id uint64) (int64, map[int64]batch.Header) {
	g.t.Helper()
	img := g.fs[id].Crash(vfs.CrashOptions{})
	rl, err := raftlog.Open(img, partDir, g.cfg.Storage, g.clock.Now().UnixMilli())
	if err != nil {
		g.t.Fatalf("node %d: open the Raft log a crash leaves: %v", id, err)
	}
	defer rl.Close()
	st := rl.Segments()
	out := map[int64]batch.Header{}
	if st.StartOffset() == st.NextOffset() {
		return st.StartOffset(), out
	}
	data, err := st.Read(st.StartOffset(), 1<<30, st.NextOffset())
	if err != nil {
		g.t.Fatalf("node %d: read the Raft log a crash leaves: %v", id, err)
	}
	for len(data) > 0 {
		h, _, rest, err := batch.Next(data)
		if err != nil {
			g.t.Fatal(err)
		}
		out[h.BaseOffset], data = h, rest
	}
	return st.StartOffset(), out
}

// exposedUpTo returns the batches high watermarks exposed below end, in
// offset order: the whole history, retention or not.
func (g *group) exposedUpTo(end int64) []byte {
	g.t.Helper()
	var out []byte
	for off := int64(0); off < end; {
		whole, ok := g.exposed[off]
		if !ok {
			g.t.Fatalf("no replica exposed a batch at offset %d", off)
		}
		h, err := batch.ParseHeader(whole)
		if err != nil {
			g.t.Fatal(err)
		}
		out = append(out, whole...)
		off = h.NextOffset()
	}
	return out
}

// runFor runs the simulation for ms of virtual time and moves the
// partitions' clock as far, so their checkpoints (raft-state's applied
// index, producer snapshots) fall between crashes.
func (g *group) runFor(ms int64) {
	g.t.Helper()
	if err := g.c.RunFor(ms); err != nil {
		g.t.Fatal(err)
	}
	g.clock.Advance(time.Duration(ms) * time.Millisecond)
}

// drive retries the producer's in-flight batch until it is acknowledged,
// with no more faults than the run left.
func (g *group) drive(pr *simProducer, rng *rand.Rand) {
	g.t.Helper()
	for range 20 {
		if pr.inflight != nil && pr.inflight.node != 0 {
			g.run("the in-flight batch's outcome", func() bool {
				g.settle(pr)
				return pr.inflight == nil || pr.inflight.node == 0
			}, 20_000)
		}
		if pr.inflight == nil {
			return
		}
		g.step(pr, g.leader(), rng)
		if pr.inflight != nil && pr.inflight.node == 0 {
			if err := g.c.RunFor(100); err != nil { // the leader just stepped down
				g.t.Fatal(err)
			}
		}
	}
	g.t.Fatalf("producer %d: sequence %d never acknowledged", pr.pid, pr.next)
}

// chaos crashes, restarts, isolates, heals or cleans now and then.
func (g *group) chaos(rng *rand.Rand) {
	ids := g.c.IDs()
	id := ids[rng.IntN(len(ids))]
	switch n := rng.IntN(20); {
	case n == 0 && g.c.Node(id).Up && g.down() == 0:
		g.crash(id)
	case n <= 3 && !g.c.Node(id).Up:
		g.restart(id)
	case n == 4:
		if l, ok := g.c.Leader(); ok {
			g.c.Net.Isolate(l, ids)
		}
	case n <= 6:
		g.c.Net.Heal()
	case n == 7 && g.c.Node(id).Up:
		// Retention (where configured) compacts the replica's Raft log: a
		// replica behind then catches up from a snapshot.
		if err := g.parts[id].Clean(g.clock.Now().UnixMilli()); err != nil && g.c.Node(id).Replica.Err() == nil {
			g.t.Fatalf("clean on %d: %v", id, err)
		}
	}
}

func (g *group) down() int {
	n := 0
	for _, id := range g.c.IDs() {
		if !g.c.Node(id).Up {
			n++
		}
	}
	return n
}

// step moves a producer on: it learns its in-flight batch's outcome,
// retries it, or sends the next one.
func (g *group) step(pr *simProducer, leader uint64, rng *rand.Rand) {
	g.t.Helper()
	g.settle(pr)
	if pr.inflight != nil && pr.inflight.node == leader {
		return // still waiting on the replica that leads
	}
	n := pr.records
	if pr.inflight == nil {
		n = 1 + rng.IntN(3)
	}
	res, err := g.parts[leader].Append(idempotent(g.t, pr.pid, 0, pr.next, n))
	switch {
	case errors.Is(err, ErrNotLeader):
		return
	case err != nil:
		g.t.Fatalf("producer %d sequence %d on %d: %v", pr.pid, pr.next, leader, err)
	default:
		// A retry answered as a duplicate waits as the original does: a
		// pending original may still be lost with its term.
		pr.records, pr.inflight = n, &simAppend{node: leader, res: res}
	}
}

// settle takes in the outcome of the in-flight batch, if known.
func (g *group) settle(pr *simProducer) {
	in := pr.inflight
	if in == nil {
		return
	}
	if in.node == 0 {
		return // waiting to be retried
	}
	if !g.c.Node(in.node).Up {
		pr.inflight = &simAppend{node: 0} // the reply is lost: retry
		return
	}
	done, err := g.parts[in.node].committed(in.res.LastOffset, in.res.Term)
	switch {
	case !done:
	case err == nil:
		pr.acked[pr.next], pr.inflight = in.res.BaseOffset, nil
		pr.next += int32(pr.records)
	case errors.Is(err, ErrNotLeader):
		pr.inflight = &simAppend{node: 0}
	default:
		g.t.Fatalf("producer %d: %v", pr.pid, err)
	}
}

// checkProducers checks each producer's batches in the final log: each
// sequence once, in order, and acknowledged ones where they were acked.
func checkProducers(t *testing.T, data []byte, producers []*simProducer) {
	t.Helper()
	seen := map[int64]map[int32]int64{}
	next := map[int64]int32{}
	for len(data) > 0 {
		h, _, rest, err := batch.Next(data)
		if err != nil {
			t.Fatal(err)
		}
		data = rest
		if seen[h.ProducerID] == nil {
			seen[h.ProducerID] = map[int32]int64{}
		}
		if h.BaseSequence != next[h.ProducerID] {
			t.Fatalf("producer %d: batch of sequence %d at offset %d, want sequence %d", h.ProducerID, h.BaseSequence, h.BaseOffset, next[h.ProducerID])
		}
		seen[h.ProducerID][h.BaseSequence] = h.BaseOffset
		next[h.ProducerID] = h.BaseSequence + h.LastOffsetDelta + 1
	}
	for _, pr := range producers {
		for seq, off := range pr.acked {
			if got, ok := seen[pr.pid][seq]; !ok || got != off {
				t.Fatalf("producer %d sequence %d acked at offset %d, in the log at %d (%v)", pr.pid, seq, off, got, ok)
			}
		}
		if next[pr.pid] != pr.next {
			t.Fatalf("producer %d: log ends at sequence %d, producer at %d", pr.pid, next[pr.pid], pr.next)
		}
	}
}

// simWriter appends events one at a time to its own stream with the exact
// expected revision, retrying an unanswered append (same event id) on
// whichever replica leads, as an event-store client does.
type simWriter struct {
	stream   string
	next     int64 // revision the in-flight or next event gets
	inflight *simAppend
	retried  bool // the in-flight event was sent before: a duplicate is its answer
}

// TestReplicatedStreamSimulation: event-store writers on 3 replicas under
// the faults of TestReplicatedSimulation; in the end every replica's index
// holds each writer's events once, in order, at revisions 0..n-1 without
// gaps, and every acknowledged revision is where it was acknowledged.
func TestReplicatedStreamSimulation(t *testing.T) {
	var seeds []uint64
	if *simSeedFlag >= 0 {
		seeds = append(seeds, uint64(*simSeedFlag))
	} else {
		for s := range *simSeedsFlag {
			seeds = append(seeds, uint64(s)+500)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runStreamSeed(t, seed) })
	}
}

func runStreamSeed(t *testing.T, seed uint64) {
	g := newGroup(t, seed, []uint64{1, 2, 3}, func(c *Config) { c.DeleteSegments, c.Streams, c.CheckpointIntervalMs = false, true, 300 })
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	if err := g.c.Net.SetFaults(sim.Faults{DropPercent: 3, DuplicatePercent: 3, DelayMinMs: 1, DelayMaxMs: 15}); err != nil {
		t.Fatal(err)
	}
	writers := []*simWriter{{stream: "a"}, {stream: "b"}}
	for range 60 {
		g.chaos(rng)
		if l, ok := g.c.Leader(); ok {
			for _, w := range writers {
				g.writeStep(w, l)
			}
		}
		g.runFor(20 + rng.Int64N(200))
	}
	g.c.Net.Heal()
	if err := g.c.Net.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range g.c.IDs() {
		if !g.c.Node(id).Up {
			g.restart(id)
		}
	}
	var end int64
	for _, w := range writers {
		for range 20 {
			if w.inflight == nil {
				break
			}
			if w.inflight.node != 0 {
				g.run("the in-flight event's outcome", func() bool {
					g.settleWrite(w)
					return w.inflight == nil || w.inflight.node == 0
				}, 20_000)
			}
			if w.inflight != nil {
				g.writeStep(w, g.leader())
				if err := g.c.RunFor(100); err != nil {
					t.Fatal(err)
				}
			}
		}
		if w.inflight != nil {
			t.Fatalf("stream %s: revision %d never acknowledged", w.stream, w.next)
		}
	}
	for _, p := range g.parts {
		end = max(end, p.LogEndOffset())
	}
	g.converge(end)
	g.sameEverywhere()
	for _, w := range writers {
		var want []streams.Entry
		for _, id := range g.c.IDs() {
			got := streamEntries(t, g.parts[id], w.stream)
			if int64(len(got)) != w.next {
				t.Fatalf("node %d: stream %s holds %d events, the writer had %d acknowledged", id, w.stream, len(got), w.next)
			}
			for rev, e := range got {
				if e.Revision != int64(rev) || e.ID != fmt.Sprintf("%s-%d", w.stream, rev) {
					t.Fatalf("node %d: stream %s position %d holds revision %d id %s", id, w.stream, rev, e.Revision, e.ID)
				}
			}
			if want == nil {
				want = got
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("node %d: stream %s index differs: %v, want %v", id, w.stream, got, want)
			}
		}
	}
}

// writeStep sends the writer's next event, or retries the in-flight one.
func (g *group) writeStep(w *simWriter, leader uint64) {
	g.t.Helper()
	g.settleWrite(w)
	if w.inflight != nil && w.inflight.node == leader {
		return
	}
	records := event(w.stream, expectedBefore(w.next), fmt.Sprintf("%s-%d", w.stream, w.next))
	p := g.parts[leader]
	headers, recs, err := validateBatches(records, p.config(), false)
	if err != nil {
		g.t.Fatal(err)
	}
	// proposeBatches, not Append: Append would wait for a pending batch to
	// the same stream, and this goroutine drives the simulation.
	res, err := p.proposeBatches(records, headers, recs, p.config(), anyTerm)
	switch {
	case errors.Is(err, ErrNotLeader):
		return
	case errors.Is(err, errStreamPending):
		// An earlier attempt is still pending on this replica (a leader
		// that does not know yet it was replaced): Append would wait for it.
		return
	case errors.Is(err, streams.ErrWrongExpectedRevision) && w.retried:
		g.t.Fatalf("stream %s: retry of revision %d refused as %v, want a duplicate", w.stream, w.next, err)
	case err != nil:
		g.t.Fatalf("stream %s revision %d on %d: %v", w.stream, w.next, leader, err)
	case res.Duplicate:
		if len(res.Streams) != 1 || res.Streams[0].First != w.next {
			g.t.Fatalf("stream %s: retry answered %+v, want revision %d", w.stream, res.Streams, w.next)
		}
		w.next, w.inflight, w.retried = w.next+1, nil, false
	default:
		if len(res.Streams) != 1 || res.Streams[0].First != w.next {
			g.t.Fatalf("stream %s: append got %+v, want revision %d", w.stream, res.Streams, w.next)
		}
		w.inflight, w.retried = &simAppend{node: leader, res: res}, true
	}
}

func expectedBefore(rev int64) string {
	if rev == 0 {
		return "no-stream"
	}
	return fmt.Sprint(rev - 1)
}

func (g *group) settleWrite(w *simWriter) {
	in := w.inflight
	if in == nil || in.node == 0 {
		return
	}
	if !g.c.Node(in.node).Up {
		w.inflight = &simAppend{node: 0}
		return
	}
	done, err := g.parts[in.node].committed(in.res.LastOffset, in.res.Term)
	switch {
	case !done:
	case err == nil:
		w.next, w.inflight, w.retried = w.next+1, nil, false
	case errors.Is(err, ErrNotLeader):
		w.inflight = &simAppend{node: 0}
	default:
		g.t.Fatalf("stream %s: %v", w.stream, err)
	}
}
