package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/client"
)

// Bounds of the linearizability workloads: the pause between two
// operations of a client, the wait for one answer, the operations of a
// client, and the checker's time per history.
const (
	linearPace     = 20 * time.Millisecond
	linearOpWait   = 5 * time.Second
	linearOpsMax   = 3000
	linearCheckMax = 20 * time.Second
)

// linearHistory is a history of operations timed on one monotonic clock.
// An operation whose outcome is unknown (an error that may hide an
// effect) gets no return time until done, which gives it the end of the
// history: it may have taken effect at any time after its call, or never.
type linearHistory struct {
	start   time.Time
	mu      sync.Mutex
	ops     []porcupine.Operation
	unknown []int // indexes into ops
}

func (h *linearHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *linearHistory) add(client int, call int64, input, output any, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !known {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input, Call: call, Output: output, Return: h.now()})
}

// done returns the history with the unknown operations ending after every
// other one.
func (h *linearHistory) done() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := slices.Clone(h.ops)
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	for _, i := range h.unknown {
		ops[i].Return = end + 1
	}
	return ops
}

// offsetInput is a commit of offset to, or a fetch of, a group's offset
// of a partition (key names both).
type offsetInput struct {
	key    string
	commit bool
	offset int64
}

// offsetOutput is what a fetch read (-1 for no commit), or whether a
// commit's outcome is unknown (for the log: the model needs no outcome).
type offsetOutput struct {
	offset  int64
	unknown bool
}

// offsetsModel is a register per group and partition: a commit sets it
// whatever its outcome (a commit that failed for sure is not recorded),
// a fetch reads it.
var offsetsModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			key := op.Input.(offsetInput).key
			if _, ok := byKey[key]; !ok {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], op)
		}
		var out [][]porcupine.Operation
		for _, key := range keys {
			out = append(out, byKey[key])
		}
		return out
	},
	Init: func() any { return int64(-1) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(offsetInput)
		if in.commit {
			return true, in.offset
		}
		return output.(offsetOutput).offset == state.(int64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(offsetInput)
		if in.commit {
			return fmt.Sprintf("commit(%d)", in.offset)
		}
		return fmt.Sprintf("fetch() → %d", output.(offsetOutput).offset)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state) },
}

// streamKind is what a stream operation does.
type streamKind uint8

const (
	streamAppend   streamKind = iota
	streamReadLast            // backwards, one event
	streamReadAll             // forwards, the whole stream
)

// expectAnyRevision is an append's expected revision for Any; -1 is
// NoStream.
const expectAnyRevision = -2

// streamInput is an append of event id at an expected revision, or a
// read. Event ids are numbered in the test, so the model's state is a
// short string.
type streamInput struct {
	kind     streamKind
	expected int64
	id       uint32
}

// streamOutput is an operation's outcome. An append acknowledged at
// revision, or refused (ok false) with the stream's actual revision; an
// append of unknown outcome has unknown set. A read saw events (their
// numbers, four bytes each, as in the model's state: the last one only
// for streamReadLast) and the revision of the last of them.
type streamOutput struct {
	unknown  bool
	ok       bool
	revision int64
	events   string
}

// streamModel is a stream's list of event ids, four bytes an event: an
// append at expected revision r happens only when the stream's last
// revision is r (Any: always) and lands at the next; a refusal names the
// last revision; a read sees the end of the list (or all of it).
var streamModel = porcupine.Model{
	Init: func() any { return "" },
	Hash: func(state any) uint64 { return maphash.String(streamSeed, state.(string)) },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(streamInput), output.(streamOutput)
		last := int64(len(s)/4) - 1
		switch in.kind {
		case streamAppend:
			if in.expected != expectAnyRevision && in.expected != last {
				return out.unknown || (!out.ok && out.revision == last), s
			}
			if out.unknown || (out.ok && out.revision == last+1) {
				return true, s + string(binary.BigEndian.AppendUint32(nil, in.id))
			}
			return false, s
		case streamReadLast:
			return out.revision == last && out.events == s[max(len(s)-4, 0):], s
		default:
			return out.revision == last && out.events == s, s
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(streamInput), output.(streamOutput)
		switch {
		case in.kind == streamAppend && out.unknown:
			return fmt.Sprintf("append(e%d at %d) → ?", in.id, in.expected)
		case in.kind == streamAppend && out.ok:
			return fmt.Sprintf("append(e%d at %d) → %d", in.id, in.expected, out.revision)
		case in.kind == streamAppend:
			return fmt.Sprintf("append(e%d at %d) → refused, last %d", in.id, in.expected, out.revision)
		case in.kind == streamReadLast:
			return fmt.Sprintf("readLast() → %v, last %d", decodeIDs(out.events), out.revision)
		}
		return fmt.Sprintf("readAll() → %d events, last %d", len(out.events)/4, out.revision)
	},
	DescribeState: func(state any) string {
		s := state.(string)
		if len(s) == 0 {
			return "[]"
		}
		return fmt.Sprintf("%d events, last e%d", len(s)/4, binary.BigEndian.Uint32([]byte(s[len(s)-4:])))
	},
}

var streamSeed = maphash.MakeSeed()

func encodeIDs(ids ...uint32) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return string(b)
}

func decodeIDs(s string) []uint32 {
	var ids []uint32
	for i := 0; i+4 <= len(s); i += 4 {
		ids = append(ids, binary.BigEndian.Uint32([]byte(s[i:i+4])))
	}
	return ids
}

// linearWorkloads are the recorded clients: per node one committing and
// fetching a group's offset, one appending to and reading a stream.
type linearWorkloads struct {
	offsets, stream *linearHistory
	// stop waits for the clients, then reads the whole stream (the nodes
	// still serve: the caller heals first and stops them after): each
	// event's number at its revision, or why it could not.
	stop     func()
	final    []uint32
	finalErr error
	// finalTries are the reads of the stream that failed before one
	// succeeded (logged: a node slow to serve after the heal).
	finalTries []error
}

// startLinearWorkloads starts the clients, each through its own node: the
// offsets of group (with no members) for topic's partition 0, and stream
// of ledger.
func startLinearWorkloads(ctx context.Context, t *testing.T, nodes []*cairnServer, seed uint64, topic, group, ledger, stream string) *linearWorkloads {
	t.Helper()
	start := time.Now()
	w := &linearWorkloads{offsets: &linearHistory{start: start}, stream: &linearHistory{start: start}}
	ctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	var offsetSeq atomic.Int64 // commits are unique and increasing
	ids := &streamIDs{byID: map[string]uint32{}}
	for i, n := range nodes {
		// One try a request: a commit retried after an error (which does
		// not say it was not written) can land twice, the second time
		// after later commits, which is not one operation any more.
		kc := newKgo(t, n.kafkaAddr, kgo.SeedBrokers(n.kafkaAddr), kgo.MetadataMinAge(250*time.Millisecond), kgo.RequestRetries(0))
		es, err := client.New("http://" + n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(es.Close)
		running.Add(2)
		go func() {
			defer running.Done()
			runOffsetsClient(ctx, w.offsets, i, rand.New(rand.NewPCG(seed, uint64(2*i))), kc, &offsetSeq, group, topic)
		}()
		go func() {
			defer running.Done()
			runStreamClient(ctx, w.stream, i, rand.New(rand.NewPCG(seed, uint64(2*i+1))), es, ids, ledger, stream)
		}()
	}
	readers := make([]*client.Client, len(nodes))
	for i, n := range nodes {
		es, err := client.New("http://" + n.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(es.Close)
		readers[i] = es
	}
	readFinal := func(ctx context.Context, es *client.Client) ([]uint32, error) {
		// Page by page: a page may end before the stream does.
		var numbers []uint32
		for pages := 0; ; pages++ {
			if pages > len(nodes)*linearOpsMax {
				return nil, fmt.Errorf("stream %s: no end after %d pages", stream, pages)
			}
			page, err := es.ReadStream(ctx, ledger, stream, client.FromRevision(uint64(len(numbers))))
			switch {
			case errors.Is(err, client.ErrStreamNotFound):
				return nil, nil
			case err != nil:
				return nil, err
			}
			for _, ev := range page.Events {
				if ev.Revision != uint64(len(numbers)) {
					return nil, fmt.Errorf("stream %s: event %d at revision %d", stream, len(numbers), ev.Revision)
				}
				numbers = append(numbers, ids.number(ev.ID))
			}
			if page.EndOfStream {
				return numbers, nil
			}
			if len(page.Events) == 0 {
				return nil, fmt.Errorf("stream %s: an empty page before the end, at revision %d", stream, len(numbers))
			}
		}
	}
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			running.Wait()
			// Through each node in turn, each try bounded: one node may
			// still be catching up (its stream index rebuilt after a kill).
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var errs []error
			for try := 0; ; try++ {
				tryCtx, cancelTry := context.WithTimeout(ctx, 5*time.Second)
				w.final, w.finalErr = readFinal(tryCtx, readers[try%len(readers)])
				cancelTry()
				if w.finalErr == nil {
					w.finalTries = errs
					return
				}
				errs = append(errs, fmt.Errorf("node %d: %w", try%len(readers)+1, w.finalErr))
				if ctx.Err() != nil {
					w.finalErr = errors.Join(errs[max(len(errs)-len(readers), 0):]...)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	return w
}

// dropUnseenCommits leaves out the commits of unknown outcome whose
// offset no fetch of their key returned (commits are unique). Such a
// commit may be placed at the history's end, where it changes no read, so
// the history is linearizable with it exactly when it is without it; and
// each one left in doubles what the checker may have to try.
func dropUnseenCommits(ops []porcupine.Operation) []porcupine.Operation {
	type seen struct {
		key    string
		offset int64
	}
	fetched := map[seen]bool{}
	for _, op := range ops {
		if in := op.Input.(offsetInput); !in.commit {
			fetched[seen{in.key, op.Output.(offsetOutput).offset}] = true
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		in := op.Input.(offsetInput)
		if in.commit && op.Output.(offsetOutput).unknown && !fetched[seen{in.key, in.offset}] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// resolveAppends gives each append of unknown outcome the outcome the
// stream's final contents show: an append whose event is at revision r
// was acknowledged at r (when is still unknown: it keeps its open end),
// and one whose event is absent never took effect — the stream is never
// truncated here — so it leaves the history, as an operation without
// effect may. Each unknown append doubles what the checker may have to
// try; resolved, they seldom leave it more than one order.
func resolveAppends(ops []porcupine.Operation, final []uint32) []porcupine.Operation {
	at := make(map[uint32]int64, len(final))
	for r, n := range final {
		at[n] = int64(r)
	}
	out := ops[:0]
	for _, op := range ops {
		in, ok := op.Input.(streamInput)
		if !ok || in.kind != streamAppend || !op.Output.(streamOutput).unknown {
			out = append(out, op)
			continue
		}
		if r, ok := at[in.id]; ok {
			op.Output = streamOutput{ok: true, revision: r}
			out = append(out, op)
		}
	}
	return out
}

// runOffsetsClient commits (a third of the operations) and fetches the
// group's offset of topic's partition 0: commits through the coordinator,
// fetches through it or straight to the client's node.
func runOffsetsClient(ctx context.Context, h *linearHistory, clientID int, rng *rand.Rand, kc *kgo.Client, seq *atomic.Int64, group, topic string) {
	admin := kadm.NewClient(kc)
	key := fmt.Sprintf("%s/%s-0", group, topic)
	for range linearOpsMax {
		select {
		case <-time.After(linearPace): // the operations' rate
		case <-ctx.Done():
			return
		}
		opCtx, cancel := context.WithTimeout(ctx, linearOpWait)
		if rng.IntN(3) == 0 {
			offset := seq.Add(1)
			var os kadm.Offsets
			os.Add(kadm.Offset{Topic: topic, Partition: 0, At: offset, LeaderEpoch: -1})
			call := h.now()
			resp, err := admin.CommitOffsets(opCtx, group, os)
			if err == nil {
				err = resp.Error()
			}
			// A failed commit may still have been applied (or be later).
			h.add(clientID, call, offsetInput{key: key, commit: true, offset: offset}, offsetOutput{unknown: err != nil}, err == nil)
		} else {
			fetch := fetchRouted
			if rng.IntN(2) == 0 {
				fetch = fetchPinned
			}
			call := h.now()
			if got, err := fetch(opCtx, kc, int32(clientID+1), group, topic); err == nil { // a failed fetch saw nothing
				h.add(clientID, call, offsetInput{key: key}, offsetOutput{offset: got}, true)
			}
		}
		cancel()
	}
}

// fetchRouted fetches the group's offset of topic's partition 0 from the
// coordinator as the client knows it; -1 when none is committed.
func fetchRouted(ctx context.Context, kc *kgo.Client, _ int32, group, topic string) (int64, error) {
	resp, err := kadm.NewClient(kc).FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return 0, err
	}
	if o, ok := resp.Lookup(topic, 0); ok {
		return o.At, nil
	}
	return -1, nil
}

// fetchPinned sends the fetch to node whether it coordinates the group or
// not: a node that does not answers NOT_COORDINATOR, one that was deposed
// without knowing it must not answer from its stale state.
func fetchPinned(ctx context.Context, kc *kgo.Client, node int32, group, topic string) (int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = []kmsg.OffsetFetchRequestTopic{rt}
	resp, err := req.RequestWith(ctx, kc.Broker(int(node)))
	if err != nil {
		return 0, err
	}
	code, topics := resp.ErrorCode, resp.Topics
	if len(resp.Groups) > 0 { // v8 and later answer per group
		g := resp.Groups[0]
		code = g.ErrorCode
		topics = make([]kmsg.OffsetFetchResponseTopic, 0, len(g.Topics))
		for _, t := range g.Topics {
			ps := make([]kmsg.OffsetFetchResponseTopicPartition, 0, len(t.Partitions))
			for _, p := range t.Partitions {
				ps = append(ps, kmsg.OffsetFetchResponseTopicPartition{Partition: p.Partition, Offset: p.Offset, ErrorCode: p.ErrorCode})
			}
			topics = append(topics, kmsg.OffsetFetchResponseTopic{Topic: t.Topic, Partitions: ps})
		}
	}
	if err := kerr.ErrorForCode(code); err != nil {
		return 0, fmt.Errorf("offset fetch from node %d: %w", node, err)
	}
	for _, t := range topics {
		for _, p := range t.Partitions {
			if t.Topic != topic || p.Partition != 0 {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("offset fetch from node %d: %w", node, err)
			}
			return p.Offset, nil
		}
	}
	return 0, fmt.Errorf("offset fetch from node %d: no answer for %s-0", node, topic)
}

// streamIDs numbers the appended event ids for the model.
type streamIDs struct {
	mu   sync.Mutex
	byID map[string]uint32
}

func (s *streamIDs) next() (string, uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint32(len(s.byID) + 1)
	id := uuid.NewString()
	s.byID[id] = n
	return id, n
}

// number is the number of an appended id; ^0 (matching no append) for an
// id never appended.
func (s *streamIDs) number(id string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.byID[id]; ok {
		return n
	}
	return ^uint32(0)
}

// runStreamClient appends one event at the revision it last saw (one in
// ten at Any) or reads the stream: its last event, or one in ten times
// all of it.
func runStreamClient(ctx context.Context, h *linearHistory, clientID int, rng *rand.Rand, es *client.Client, ids *streamIDs, ledger, stream string) {
	seen := int64(-1) // the last revision this client saw
	for range linearOpsMax {
		select {
		case <-time.After(linearPace): // the operations' rate
		case <-ctx.Done():
			return
		}
		opCtx, cancel := context.WithTimeout(ctx, linearOpWait)
		switch r := rng.IntN(10); {
		case r < 5:
			in := streamInput{kind: streamAppend, expected: seen}
			expected := client.ExpectedAfter(seen)
			if r == 0 {
				in.expected, expected = expectAnyRevision, client.Any
			}
			id, n := ids.next()
			in.id = n
			call := h.now()
			res, err := es.Append(opCtx, ledger, stream, expected, client.EventData{ID: id, Type: "Linear"})
			var wrong *client.WrongExpectedRevisionError
			switch {
			case err == nil:
				seen = int64(res.LastRevision)
				h.add(clientID, call, in, streamOutput{ok: true, revision: int64(res.FirstRevision)}, true)
			case errors.As(err, &wrong):
				seen = wrong.Actual
				h.add(clientID, call, in, streamOutput{revision: wrong.Actual}, true)
			default:
				h.add(clientID, call, in, streamOutput{unknown: true}, false)
			}
		default:
			in, opts := streamInput{kind: streamReadLast}, []client.ReadOption{client.Backwards(), client.MaxCount(1)}
			if r == 9 {
				in.kind, opts = streamReadAll, []client.ReadOption{client.MaxCount(5 * linearOpsMax)} // every append of five clients
			}
			call := h.now()
			page, err := es.ReadStream(opCtx, ledger, stream, opts...)
			out := streamOutput{revision: -1}
			switch {
			case errors.Is(err, client.ErrStreamNotFound): // no event yet
			case err != nil || (in.kind == streamReadAll && !page.EndOfStream):
				cancel()
				continue // a failed (or, past the bound, short) read saw nothing
			default:
				// The events' own revisions, not the page's LastRevision:
				// that one may count an append applied during the read.
				numbers := make([]uint32, 0, len(page.Events))
				for _, ev := range page.Events {
					numbers = append(numbers, ids.number(ev.ID))
				}
				if len(page.Events) > 0 { // the last one read is the stream's last, either way
					out.revision = int64(page.Events[len(page.Events)-1].Revision)
				}
				out.events = encodeIDs(numbers...)
			}
			seen = out.revision
			h.add(clientID, call, in, out, true)
		}
		cancel()
	}
}

// check checks both histories; a violation fails the test with the
// seed and a visualization of the history, a check out of time is only
// logged.
func (w *linearWorkloads) check(t *testing.T, seed uint64) {
	t.Helper()
	offsets := w.offsets.done()
	kept := dropUnseenCommits(offsets)
	t.Logf("offsets history: %d commits of unknown outcome whose offset no fetch returned left out", len(offsets)-len(kept))
	checkLinear(t, seed, "offsets", offsetsModel, kept)
	ops := w.stream.done()
	if w.finalErr != nil {
		t.Errorf("reading the linear stream after the heal: %v", w.finalErr)
	} else {
		if len(w.finalTries) > 0 {
			t.Logf("reading the linear stream after the heal took %d tries: %v", len(w.finalTries)+1, errors.Join(w.finalTries...))
		}
		before := len(ops)
		ops = resolveAppends(ops, w.final)
		t.Logf("stream history: %d appends of unknown outcome left out (never took effect), the others resolved from the %d events read after the heal", before-len(ops), len(w.final))
	}
	checkLinear(t, seed, "stream", streamModel, ops)
}

// opKinds counts a history's operations by kind, for the log.
func opKinds(ops []porcupine.Operation) string {
	kinds := map[string]int{}
	for _, op := range ops {
		switch in := op.Input.(type) {
		case offsetInput:
			switch {
			case !in.commit:
				kinds["fetches"]++
			case op.Output.(offsetOutput).unknown:
				kinds["commits unknown"]++
			default:
				kinds["commits acknowledged"]++
			}
		case streamInput:
			out := op.Output.(streamOutput)
			switch {
			case in.kind == streamReadLast:
				kinds["last-event reads"]++
			case in.kind == streamReadAll:
				kinds["whole reads"]++
			case out.unknown:
				kinds["appends unknown"]++
			case out.ok:
				kinds["appends acknowledged"]++
			default:
				kinds["appends refused"]++
			}
		}
	}
	return fmt.Sprint(kinds)
}

func checkLinear(t *testing.T, seed uint64, name string, model porcupine.Model, ops []porcupine.Operation) {
	t.Helper()
	began := time.Now()
	result, info := porcupine.CheckOperationsVerbose(model, ops, linearCheckMax)
	t.Logf("linearizability of the %s: %d operations %s: %s in %s", name, len(ops), opKinds(ops), result, time.Since(began).Round(time.Millisecond))
	if result != porcupine.Illegal {
		return
	}
	dir, err := os.MkdirTemp("", "cairn-nemesis-linear-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("visualize the %s history: %v", name, err)
	}
	t.Errorf("seed %d: the %s history is not linearizable; visualization: %s", seed, name, path)
}

// TestLinearModels: the models accept small hand-made histories that are
// linearizable and refuse ones that are not.
func TestLinearModels(t *testing.T) {
	commit := func(client int, call, ret int64, offset int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: offsetInput{key: "g/t-0", commit: true, offset: offset}, Output: offsetOutput{}}
	}
	fetch := func(client int, call, ret int64, got int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: offsetInput{key: "g/t-0"}, Output: offsetOutput{offset: got}}
	}
	appendAt := func(client int, call, ret int64, expected int64, id uint32, out streamOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: streamInput{kind: streamAppend, expected: expected, id: id}, Output: out}
	}
	readLast := func(client int, call, ret int64, last int64, ids ...uint32) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: streamInput{kind: streamReadLast}, Output: streamOutput{revision: last, events: encodeIDs(ids...)}}
	}
	readAll := func(client int, call, ret int64, ids ...uint32) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: streamInput{kind: streamReadAll}, Output: streamOutput{revision: int64(len(ids)) - 1, events: encodeIDs(ids...)}}
	}
	acked := func(revision int64) streamOutput { return streamOutput{ok: true, revision: revision} }
	refused := func(last int64) streamOutput { return streamOutput{revision: last} }
	unknown := streamOutput{unknown: true}
	const end = 1000 // the return of an operation of unknown outcome
	tests := []struct {
		name    string
		model   porcupine.Model
		history []porcupine.Operation
		want    bool
	}{
		{"offsets: none committed", offsetsModel, []porcupine.Operation{fetch(0, 0, 1, -1)}, true},
		{"offsets: read after commit", offsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), fetch(1, 2, 3, 5)}, true},
		{"offsets: concurrent commits in either order", offsetsModel, []porcupine.Operation{
			commit(0, 0, 10, 5), commit(1, 0, 10, 6), fetch(2, 11, 12, 5), fetch(2, 13, 14, 5)}, true},
		{"offsets: stale read", offsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), commit(0, 2, 3, 6), fetch(1, 4, 5, 5)}, false},
		{"offsets: read flips back", offsetsModel, []porcupine.Operation{
			commit(0, 0, 10, 5), commit(1, 0, 10, 6), fetch(2, 11, 12, 5), fetch(2, 13, 14, 6), fetch(2, 15, 16, 5)}, false},
		{"offsets: unknown commit seen late", offsetsModel, []porcupine.Operation{
			commit(0, 0, end, 7), fetch(1, 5, 6, -1), fetch(1, 7, 8, 7)}, true},
		{"offsets: unknown commit never seen", offsetsModel, []porcupine.Operation{commit(0, 0, end, 7), fetch(1, 5, 6, -1)}, true},
		{"offsets: value never committed", offsetsModel, []porcupine.Operation{commit(0, 0, 1, 5), fetch(1, 2, 3, 4)}, false},

		{"stream: appends and reads", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, 0, 2, acked(1)), readLast(0, 4, 5, 1, 2), readAll(1, 4, 5, 1, 2)}, true},
		{"stream: one of two racing appends refused", streamModel, []porcupine.Operation{
			appendAt(0, 0, 10, -1, 1, acked(0)), appendAt(1, 0, 10, -1, 2, refused(0)), readAll(2, 11, 12, 1)}, true},
		{"stream: both racing appends acknowledged", streamModel, []porcupine.Operation{
			appendAt(0, 0, 10, -1, 1, acked(0)), appendAt(1, 0, 10, -1, 2, acked(0))}, false},
		{"stream: refused with a wrong actual revision", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, 5, 2, refused(-1))}, false},
		{"stream: any appends at the end", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(1, 2, 3, expectAnyRevision, 2, acked(1)), readLast(0, 4, 5, 1, 2)}, true},
		{"stream: acknowledged append lost", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), readLast(1, 2, 3, -1)}, false},
		{"stream: stale last event", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(0, 2, 3, 0, 2, acked(1)), readLast(1, 4, 5, 0, 1)}, false},
		{"stream: unknown append seen", streamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), readAll(1, 5, 6), readAll(1, 7, 8, 1), appendAt(1, 9, 10, 0, 2, acked(1))}, true},
		{"stream: unknown append never seen", streamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), appendAt(1, 1, 2, -1, 2, acked(0)), readAll(1, 3, 4, 2)}, true},
		{"stream: unknown append seen and then gone", streamModel, []porcupine.Operation{
			appendAt(0, 0, end, -1, 1, unknown), readAll(1, 5, 6, 1), readAll(1, 7, 8)}, false},
		{"stream: events reordered", streamModel, []porcupine.Operation{
			appendAt(0, 0, 1, -1, 1, acked(0)), appendAt(0, 2, 3, 0, 2, acked(1)), readAll(1, 4, 5, 2, 1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(tt.model, tt.history); got != tt.want {
				t.Fatalf("linearizable: %t, want %t", got, tt.want)
			}
		})
	}
}

// TestResolveAppends: unknown appends take the outcome the final stream
// shows, and a history that was legal only while an outcome was open
// turns illegal once it is known.
func TestResolveAppends(t *testing.T) {
	op := func(client int, call, ret int64, in streamInput, out streamOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
	}
	const end = 1000
	unknown := streamOutput{unknown: true}
	history := []porcupine.Operation{
		op(0, 0, end, streamInput{kind: streamAppend, expected: -1, id: 1}, unknown),
		op(1, 1, 2, streamInput{kind: streamAppend, expected: -1, id: 2}, streamOutput{ok: true, revision: 0}),
		op(2, 3, end, streamInput{kind: streamAppend, expected: 0, id: 3}, unknown),
		op(1, 4, 5, streamInput{kind: streamReadAll}, streamOutput{revision: 0, events: encodeIDs(2)}),
	}
	got := resolveAppends(slices.Clone(history), []uint32{2, 3})
	if len(got) != 3 {
		t.Fatalf("resolved %d operations, want 3 (append of e1 left out): %v", len(got), got)
	}
	if out := got[1].Output.(streamOutput); !out.ok || out.revision != 1 || out.unknown {
		t.Fatalf("append of e3 resolved to %+v, want acknowledged at 1", out)
	}
	if !porcupine.CheckOperations(streamModel, got) {
		t.Fatal("resolved history refused")
	}
	// A read saw e1 after e2, and the final stream has no e1: with e1's
	// outcome open that is legal (e1 landed at 1); resolved, e1 leaves the
	// history and the read cannot be explained — the event was lost.
	seen := []porcupine.Operation{
		op(0, 0, end, streamInput{kind: streamAppend, expected: expectAnyRevision, id: 1}, unknown),
		op(1, 1, 2, streamInput{kind: streamAppend, expected: -1, id: 2}, streamOutput{ok: true, revision: 0}),
		op(1, 6, 7, streamInput{kind: streamReadAll}, streamOutput{revision: 1, events: encodeIDs(2, 1)}),
	}
	if !porcupine.CheckOperations(streamModel, seen) {
		t.Fatal("the open history was refused")
	}
	if porcupine.CheckOperations(streamModel, resolveAppends(seen, []uint32{2})) {
		t.Fatal("a read of an event the final stream does not hold passed")
	}
}

// TestDropUnseenCommits: an unknown commit no fetch saw leaves the history;
// one a fetch saw stays, and the verdict is the same either way.
func TestDropUnseenCommits(t *testing.T) {
	commit := func(client int, call, ret int64, offset int64, unknown bool) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: offsetInput{key: "g/t-0", commit: true, offset: offset}, Output: offsetOutput{unknown: unknown}}
	}
	fetch := func(client int, call, ret int64, got int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: offsetInput{key: "g/t-0"}, Output: offsetOutput{offset: got}}
	}
	const end = 1000
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		kept    int
		legal   bool
	}{
		{"unseen unknown commit dropped", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), fetch(2, 3, 4, 8)}, 2, true},
		{"seen unknown commit kept", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), fetch(2, 3, 4, 7)}, 3, true},
		{"stale read still refused", []porcupine.Operation{
			commit(0, 0, end, 7, true), commit(1, 1, 2, 8, false), commit(1, 3, 4, 9, false), fetch(2, 5, 6, 8)}, 3, false},
	} {
		got := dropUnseenCommits(slices.Clone(tc.history))
		if len(got) != tc.kept {
			t.Errorf("%s: kept %d operations, want %d", tc.name, len(got), tc.kept)
		}
		before, after := porcupine.CheckOperations(offsetsModel, tc.history), porcupine.CheckOperations(offsetsModel, got)
		if before != tc.legal || after != tc.legal {
			t.Errorf("%s: linearizable %v before, %v after; want %v", tc.name, before, after, tc.legal)
		}
	}
}
