package cluster_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/anishathalye/porcupine"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/eventstore"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/internal/linear"
	"github.com/cairnlog/cairn/streams"
)

var simLinearSeeds = flag.Int("sim.linearseeds", 0, "TestSimulatedClusterLinearizable runs seeds 1..N with random schedules (-sim.seed: that seed only)")

// Bounds of the linearizability workloads, in simulated time: the pause
// between two operations of a client and the wait for one answer (three
// election timeouts, as the writer's); the operations of a client; the
// checker's real time per history.
const (
	linPace    = 20 * time.Millisecond
	linOpWait  = 360 * time.Millisecond
	linOpsMax  = 2000
	linRealMax = 5 * time.Second
	linClients = 3
	linGroup   = "simgroup"
	linTopic   = "sim" // the writer's: the group commits offsets of its partition 0
	linES      = "simevents"
	linStream  = "ledger-1"
)

var linQuiet = slog.New(slog.DiscardHandler)

// errNotSent: the operation reached no node that could apply it (no
// leader known, the one named not running, or its front end closed), so
// it had no effect and is left out of the history.
var errNotSent = errors.New("not sent")

// TestSimulatedClusterLinearizable runs, on the simulated cluster under a
// seeded schedule of faults, consumer-group offset commits and fetches
// through the group coordinator and event-store appends at expected
// revisions and reads of one stream through the event store, each client
// at a node drawn from the seed (forwarded to the leader as the servers
// do), and checks with porcupine that both histories are linearizable.
// The fixed seeds run in CI; -sim.linearseeds N runs seeds 1..N.
func TestSimulatedClusterLinearizable(t *testing.T) {
	type run struct {
		seed    uint64
		element string // "" for the seed's random schedule
		first   bool   // drawn from the elements of the first schedules (cluster.RunFirstSimulation)
	}
	// Seed 3's random schedule caught a commit acknowledged before it was
	// committed (a broken build) where the two elements alone did not.
	runs := []run{{13, "crash", false}, {14, "recipe: partition, crash, minority+crashed", false}, {seed: 3, first: true}}
	switch {
	case cluster.SimSeed() != 0:
		runs = []run{{seed: cluster.SimSeed()}}
	case *simLinearSeeds > 0:
		runs = nil
		for s := range *simLinearSeeds {
			runs = append(runs, run{seed: uint64(s + 1)})
		}
	}
	for _, r := range runs {
		t.Run(fmt.Sprintf("seed=%d/%s", r.seed, r.element), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d failed; replay with: go test ./cluster -run TestSimulatedClusterLinearizable -sim.seed=%d -sim.log", r.seed, r.seed)
				}
			}()
			w := &simLinear{}
			switch {
			case r.first:
				cluster.RunFirstSimulation(t, r.seed, w)
			case r.element == "":
				cluster.RunSimulation(t, r.seed, w)
			default:
				cluster.RunElement(t, r.seed, r.element, w)
			}
		})
	}
}

// simLinear is the workload: per node one offsets client and one stream
// client, with the front ends (a group coordinator and an event store) it
// opens on each node as a server does.
type simLinear struct {
	sim     cluster.SimCluster
	offsets *linear.History
	stream  *linear.History
	stop    chan struct{}
	running sync.WaitGroup
	commits atomic.Int64  // committed offsets are unique and increasing
	events  atomic.Uint32 // event numbers

	mu    sync.Mutex
	front map[*cluster.Cluster]*simFront
	dead  map[*cluster.Cluster]bool // closed: no front end opens on them
	final []uint32
	fails []error // final reads that failed
	// errs counts the operations' errors by kind, for the log.
	errs map[string]int
}

// failed counts err under what (nil: nothing).
func (w *simLinear) failed(what string, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && len(msg) > 60 {
		msg = msg[i+2:] // the cause, not the route
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs[what+": "+msg]++
}

// simFront is what a server runs on a node for these clients.
type simFront struct {
	once sync.Once
	co   *groups.Coordinator
	es   *eventstore.Service
	err  error
}

func (w *simLinear) Start(s cluster.SimCluster) {
	w.sim = s
	// One logical clock for both histories, a tick before each call and
	// after each return: an operation that returned before another was
	// called precedes it, and no two events tie (simulated instants would:
	// the clock moves in steps).
	var seq atomic.Int64
	now := func() int64 { return seq.Add(1) }
	w.offsets, w.stream = linear.NewHistory(now), linear.NewHistory(now)
	w.stop = make(chan struct{})
	w.front, w.dead, w.errs = map[*cluster.Cluster]*simFront{}, map[*cluster.Cluster]bool{}, map[string]int{}
	if err := s.CreateTopic(linES, map[string]string{"cleanup.policy": "stream"}); err != nil {
		panic(err) // Start has no t: the run's setup failed
	}
	s.OnClose(w.closeOn)
	for i := range linClients {
		w.running.Add(2)
		go func() {
			defer w.running.Done()
			w.runOffsets(i, rand.New(rand.NewPCG(s.Seed(), uint64(2*i))))
		}()
		go func() {
			defer w.running.Done()
			w.runStream(i, rand.New(rand.NewPCG(s.Seed(), uint64(2*i+1))))
		}()
	}
}

func (w *simLinear) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.running.Wait()
}

// frontOn returns the front ends on node c, opening them on first use.
func (w *simLinear) frontOn(c *cluster.Cluster) (*simFront, error) {
	w.mu.Lock()
	if w.dead[c] {
		w.mu.Unlock()
		return nil, fmt.Errorf("%w: the node closed", errNotSent)
	}
	f, ok := w.front[c]
	if !ok {
		f = &simFront{}
		w.front[c] = f
	}
	w.mu.Unlock()
	f.once.Do(func() {
		if f.co, f.err = groups.Open(c, groups.DefaultConfig(), linQuiet); f.err == nil {
			f.es = eventstore.New(c, eventstore.Config{}, linQuiet)
		}
	})
	return f, f.err
}

// closeOn closes the front ends on node c, which is closing: a server's
// die with its process.
func (w *simLinear) closeOn(c *cluster.Cluster) {
	w.mu.Lock()
	w.dead[c] = true
	f := w.front[c]
	delete(w.front, c)
	w.mu.Unlock()
	if f == nil {
		return
	}
	f.once.Do(func() { f.err = fmt.Errorf("%w: the node closed", errNotSent) }) // waits for an Open under way
	if f.err == nil {
		f.es.Close()
		_ = f.co.Close()
	}
}

// pace waits linPace of simulated time; false once stopped.
func (w *simLinear) pace() bool {
	t := w.sim.Clock().NewTimer(linPace)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-w.stop:
		return false
	}
}

// opContext ends after linOpWait of simulated time (or linRealMax of real
// time): a client's request timeout.
func (w *simLinear) opContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), linRealMax)
	t := w.sim.Clock().NewTimer(linOpWait)
	go func() {
		defer t.Stop()
		select {
		case <-t.C():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// pick draws a running node: the client's own (id i+1) half the time.
func (w *simLinear) pick(i int, rng *rand.Rand) (int32, *cluster.Cluster) {
	nodes := w.sim.Running()
	id := int32(i + 1)
	if c, ok := nodes[id]; ok && rng.IntN(2) == 0 {
		return id, c
	}
	ids := slices.Sorted(maps.Keys(nodes))
	if len(ids) == 0 {
		return -1, nil
	}
	id = ids[rng.IntN(len(ids))]
	return id, nodes[id]
}

// runOffsets commits (a third of the operations) and fetches the group's
// offset of linTopic's partition 0. A commit goes to a drawn node and, on
// NOT_COORDINATOR (refused before anything is written), to the coordinator
// that node locates, as a Kafka client after FindCoordinator; a fetch goes
// there too or stays pinned to the drawn node, which must then answer
// NOT_COORDINATOR rather than stale offsets when it was deposed.
func (w *simLinear) runOffsets(i int, rng *rand.Rand) {
	key := linGroup + "/" + linTopic + "-0"
	tp := groups.TopicPartition{Topic: linTopic, Partition: 0}
	for range linOpsMax {
		if !w.pace() {
			return
		}
		_, c := w.pick(i, rng)
		if c == nil {
			continue
		}
		commit, pinned := rng.IntN(3) == 0, rng.IntN(2) == 0
		ctx, cancel := w.opContext()
		via := func(f func(co *groups.Coordinator) error) error {
			front, err := w.frontOn(c)
			if err != nil {
				return err
			}
			err = f(front.co)
			if !errors.Is(err, groups.ErrNotCoordinator) || (!commit && pinned) {
				return err
			}
			b, err := front.co.Locate(linGroup)
			if err != nil {
				return err
			}
			to, ok := w.sim.Running()[b.NodeID]
			if !ok {
				return fmt.Errorf("%w: coordinator node %d is not running", errNotSent, b.NodeID)
			}
			if front, err = w.frontOn(to); err != nil {
				return err
			}
			return f(front.co)
		}
		if commit {
			offset := w.commits.Add(1)
			call := w.offsets.Now()
			err := via(func(co *groups.Coordinator) error {
				errs, err := co.CommitOffsets(ctx, groups.CommitRequest{Group: linGroup, Generation: -1},
					map[groups.TopicPartition]groups.OffsetCommit{tp: {Offset: offset, LeaderEpoch: -1}})
				if err == nil {
					err = errs[tp]
				}
				return err
			})
			w.failed("commit", err)
			// A failed commit may still have been applied (or be later).
			if !errors.Is(err, errNotSent) {
				w.offsets.Add(i, call, linear.OffsetInput{Key: key, Commit: true, Offset: offset}, linear.OffsetOutput{Unknown: err != nil}, err == nil)
			}
		} else {
			got := int64(-1)
			call := w.offsets.Now()
			err := via(func(co *groups.Coordinator) error {
				out, err := co.FetchOffsets(ctx, linGroup, []groups.TopicPartition{tp})
				if oc, ok := out[tp]; ok && err == nil {
					got = oc.Offset
				}
				return err
			})
			w.failed("fetch", err)
			if err == nil { // a failed fetch saw nothing
				w.offsets.Add(i, call, linear.OffsetInput{Key: key}, linear.OffsetOutput{Offset: got}, true)
			}
		}
		cancel()
	}
}

// eventID is event number n's id (the event store takes UUIDs).
func eventID(n uint32) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n) }

func eventNumber(id string) uint32 {
	n, err := strconv.ParseUint(id[strings.LastIndexByte(id, '-')+1:], 16, 32)
	if err != nil {
		return ^uint32(0)
	}
	return uint32(n)
}

// onLeader runs f on the event store of the stream partition's leader as
// node c knows it: c's own when c leads, else the leader's, marked
// forwarded as a server marks a call it forwards (a forwarded call is
// never forwarded again: a node that does not lead answers UNAVAILABLE).
func (w *simLinear) onLeader(c *cluster.Cluster, f func(es *eventstore.Service, h func(*connectHeader)) error) error {
	l, err := c.Leader(linES, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotSent, err)
	}
	to, forwarded := c, !l.Local
	if forwarded {
		var ok bool
		if to, ok = w.sim.Running()[l.Node]; !ok {
			return fmt.Errorf("%w: leader node %d not running", errNotSent, l.Node)
		}
	}
	front, err := w.frontOn(to)
	if err != nil {
		return err
	}
	return f(front.es, func(h *connectHeader) {
		if forwarded {
			h.mark()
		}
	})
}

// connectHeader marks a request forwarded.
type connectHeader struct{ set func(k, v string) }

func (h *connectHeader) mark() { h.set("Cairn-Forwarded-By", "sim") }

func request[T any](msg *T, mark func(*connectHeader)) *connect.Request[T] {
	req := connect.NewRequest(msg)
	mark(&connectHeader{set: req.Header().Set})
	return req
}

func expectedRevision(r int64) *eventstorev1.ExpectedRevision {
	switch {
	case r == linear.ExpectAny:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Any{Any: true}}
	case r < 0:
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	}
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: uint64(r)}}
}

// runStream appends one event at the revision the client last saw (one in
// ten at Any), or reads the stream: its last event, or one in ten times all
// of it.
func (w *simLinear) runStream(i int, rng *rand.Rand) {
	seen := int64(-1)
	for range linOpsMax {
		if !w.pace() {
			return
		}
		_, c := w.pick(i, rng)
		if c == nil {
			continue
		}
		ctx, cancel := w.opContext()
		switch r := rng.IntN(10); {
		case r < 5:
			in := linear.StreamInput{Kind: linear.StreamAppend, Expected: seen, ID: w.events.Add(1)}
			if r == 0 {
				in.Expected = linear.ExpectAny
			}
			msg := &eventstorev1.AppendRequest{Topic: linES, Stream: linStream, ExpectedRevision: expectedRevision(in.Expected),
				Events: []*eventstorev1.Event{{Id: eventID(in.ID), Type: "Linear"}}}
			call := w.stream.Now()
			var first, last int64
			err := w.onLeader(c, func(es *eventstore.Service, mark func(*connectHeader)) error {
				resp, err := es.Append(ctx, request(msg, mark))
				if err == nil {
					first, last = int64(resp.Msg.FirstRevision), int64(resp.Msg.LastRevision)
				}
				return err
			})
			var wrong *streams.WrongExpectedRevisionError
			if !errors.As(err, &wrong) {
				w.failed("append", err)
			}
			switch {
			case errors.Is(err, errNotSent):
			case err == nil:
				seen = last
				w.stream.Add(i, call, in, linear.StreamOutput{OK: true, Revision: first}, true)
			case errors.As(err, &wrong):
				seen = wrong.Actual
				w.stream.Add(i, call, in, linear.StreamOutput{Revision: wrong.Actual}, true)
			default:
				w.stream.Add(i, call, in, linear.StreamOutput{Unknown: true}, false)
			}
		default:
			in := linear.StreamInput{Kind: linear.StreamReadLast}
			msg := &eventstorev1.ReadStreamRequest{Topic: linES, Stream: linStream, Direction: eventstorev1.Direction_DIRECTION_BACKWARDS, MaxCount: 1}
			if r == 9 {
				in.Kind = linear.StreamReadAll
				msg = &eventstorev1.ReadStreamRequest{Topic: linES, Stream: linStream, MaxCount: 5 * linOpsMax}
			}
			call := w.stream.Now()
			var resp *connect.Response[eventstorev1.ReadStreamResponse]
			err := w.onLeader(c, func(es *eventstore.Service, mark func(*connectHeader)) error {
				var err error
				resp, err = es.ReadStream(ctx, request(msg, mark))
				return err
			})
			out := linear.StreamOutput{Revision: -1}
			if connect.CodeOf(err) != connect.CodeNotFound {
				w.failed("read", err)
			}
			switch {
			case connect.CodeOf(err) == connect.CodeNotFound: // no event yet
			case err != nil || (in.Kind == linear.StreamReadAll && !resp.Msg.EndOfStream):
				cancel()
				continue // a failed (or short) read saw nothing
			default:
				// The events' own revisions: the response's last revision
				// may count an append applied during the read.
				numbers := make([]uint32, 0, len(resp.Msg.Events))
				for _, ev := range resp.Msg.Events {
					numbers = append(numbers, eventNumber(ev.Id))
				}
				if n := len(resp.Msg.Events); n > 0 {
					out.Revision = int64(resp.Msg.Events[n-1].Revision)
				}
				out.Events = linear.EncodeIDs(numbers...)
			}
			seen = out.Revision
			w.stream.Add(i, call, in, out, true)
		}
		cancel()
	}
}

// readFinal reads the whole stream through the leader, page by page, each
// try bounded, until one succeeds (a node may still rebuild its stream
// index after a crash).
func (w *simLinear) readFinal() error {
	for try := 0; try < 200; try++ { // 10 s of simulated time
		numbers, err := w.readAll()
		if err == nil {
			w.final = numbers
			return nil
		}
		w.fails = append(w.fails, err)
		t := w.sim.Clock().NewTimer(50 * time.Millisecond)
		<-t.C()
	}
	return errors.Join(w.fails[len(w.fails)-3:]...)
}

func (w *simLinear) readAll() ([]uint32, error) {
	var numbers []uint32
	for pages := 0; pages <= linClients*linOpsMax; pages++ {
		_, c := w.pick(0, rand.New(rand.NewPCG(uint64(pages), 0)))
		if c == nil {
			return nil, errors.New("no node running")
		}
		ctx, cancel := w.opContext()
		from := uint64(len(numbers))
		var resp *connect.Response[eventstorev1.ReadStreamResponse]
		err := w.onLeader(c, func(es *eventstore.Service, mark func(*connectHeader)) error {
			var err error
			resp, err = es.ReadStream(ctx, request(&eventstorev1.ReadStreamRequest{Topic: linES, Stream: linStream, FromRevision: &from}, mark))
			return err
		})
		cancel()
		switch {
		case connect.CodeOf(err) == connect.CodeNotFound && len(numbers) == 0:
			return nil, nil
		case err != nil:
			return nil, err
		}
		for _, ev := range resp.Msg.Events {
			if ev.Revision != uint64(len(numbers)) {
				return nil, fmt.Errorf("event %d at revision %d", len(numbers), ev.Revision)
			}
			numbers = append(numbers, eventNumber(ev.Id))
		}
		if resp.Msg.EndOfStream {
			return numbers, nil
		}
		if len(resp.Msg.Events) == 0 {
			return nil, fmt.Errorf("an empty page before the end, at revision %d", len(numbers))
		}
	}
	return nil, errors.New("no end of the stream")
}

func (w *simLinear) Check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	t.Logf("errors of the operations, by kind: %v", w.errs)
	w.mu.Unlock()
	offsets := w.offsets.Done()
	kept := linear.DropUnseenCommits(offsets)
	t.Logf("offsets history: %d commits of unknown outcome whose offset no fetch returned left out", len(offsets)-len(kept))
	linear.Check(t, w.sim.Seed(), "offsets", linear.OffsetsModel, kept)
	ops := w.stream.Done()
	if err := w.readFinal(); err != nil {
		t.Errorf("reading the stream after the heal: %v", err)
		return
	}
	before := len(ops)
	ops = linear.ResolveAppends(ops, w.final)
	t.Logf("stream history: %d appends of unknown outcome left out (never took effect), the others resolved from the %d events read after the heal (%d failed reads first)",
		before-len(ops), len(w.final), len(w.fails))
	if !linear.Check(t, w.sim.Seed(), "stream", linear.StreamModel, ops) {
		for _, d := range streamAnomalies(ops, w.final) {
			t.Log(d)
		}
	}
}

// streamAnomalies lists the operations of a stream history that disagree
// with the stream read after the heal (which the stream must equal or
// extend when the history is linearizable), at most 20: a failing run's
// explanation, beside porcupine's visualization.
func streamAnomalies(ops []porcupine.Operation, final []uint32) []string {
	var out []string
	note := func(op porcupine.Operation, format string, args ...any) {
		if len(out) < 20 {
			out = append(out, fmt.Sprintf("client %d [%d, %d] %s: ", op.ClientId, op.Call, op.Return,
				linear.StreamModel.DescribeOperation(op.Input, op.Output))+fmt.Sprintf(format, args...))
		}
	}
	for _, op := range ops {
		in, o := op.Input.(linear.StreamInput), op.Output.(linear.StreamOutput)
		switch {
		case in.Kind == linear.StreamAppend && o.OK:
			if o.Revision >= int64(len(final)) || final[o.Revision] != in.ID {
				note(op, "the final stream holds another event there")
			}
		case in.Kind == linear.StreamAppend:
		default:
			got := linear.DecodeIDs(o.Events)
			from := o.Revision + 1 - int64(len(got))
			if o.Revision >= int64(len(final)) || from < 0 {
				note(op, "read past the final stream's end (%d events)", len(final))
				continue
			}
			if !slices.Equal(got, final[from:o.Revision+1]) {
				note(op, "the final stream holds %v there", final[from:o.Revision+1])
			}
		}
	}
	return out
}
