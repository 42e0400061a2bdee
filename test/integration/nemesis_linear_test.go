package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/internal/linear"
)

// Bounds of the linearizability workloads: the pause between two
// operations of a client, the wait for one answer, the operations of a
// client.
const (
	linearPace   = 20 * time.Millisecond
	linearOpWait = 5 * time.Second
	linearOpsMax = 3000
)

// linearWorkloads are the recorded clients: per node one committing and
// fetching a group's offset, one appending to and reading a stream.
type linearWorkloads struct {
	offsets, stream *linear.History
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
	now := func() int64 { return int64(time.Since(start)) } // one monotonic clock for both
	w := &linearWorkloads{offsets: linear.NewHistory(now), stream: linear.NewHistory(now)}
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

// runOffsetsClient commits (a third of the operations) and fetches the
// group's offset of topic's partition 0: commits through the coordinator,
// fetches through it or straight to the client's node.
func runOffsetsClient(ctx context.Context, h *linear.History, clientID int, rng *rand.Rand, kc *kgo.Client, seq *atomic.Int64, group, topic string) {
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
			call := h.Now()
			resp, err := admin.CommitOffsets(opCtx, group, os)
			if err == nil {
				err = resp.Error()
			}
			// A failed commit may still have been applied (or be later).
			h.Add(clientID, call, linear.OffsetInput{Key: key, Commit: true, Offset: offset}, linear.OffsetOutput{Unknown: err != nil}, err == nil)
		} else {
			fetch := fetchRouted
			if rng.IntN(2) == 0 {
				fetch = fetchPinned
			}
			call := h.Now()
			if got, err := fetch(opCtx, kc, int32(clientID+1), group, topic); err == nil { // a failed fetch saw nothing
				h.Add(clientID, call, linear.OffsetInput{Key: key}, linear.OffsetOutput{Offset: got}, true)
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
func runStreamClient(ctx context.Context, h *linear.History, clientID int, rng *rand.Rand, es *client.Client, ids *streamIDs, ledger, stream string) {
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
			in := linear.StreamInput{Kind: linear.StreamAppend, Expected: seen}
			expected := client.ExpectedAfter(seen)
			if r == 0 {
				in.Expected, expected = linear.ExpectAny, client.Any
			}
			id, n := ids.next()
			in.ID = n
			call := h.Now()
			res, err := es.Append(opCtx, ledger, stream, expected, client.EventData{ID: id, Type: "Linear"})
			var wrong *client.WrongExpectedRevisionError
			switch {
			case err == nil:
				seen = int64(res.LastRevision)
				h.Add(clientID, call, in, linear.StreamOutput{OK: true, Revision: int64(res.FirstRevision)}, true)
			case errors.As(err, &wrong):
				seen = wrong.Actual
				h.Add(clientID, call, in, linear.StreamOutput{Revision: wrong.Actual}, true)
			default:
				h.Add(clientID, call, in, linear.StreamOutput{Unknown: true}, false)
			}
		default:
			in, opts := linear.StreamInput{Kind: linear.StreamReadLast}, []client.ReadOption{client.Backwards(), client.MaxCount(1)}
			if r == 9 {
				in.Kind, opts = linear.StreamReadAll, []client.ReadOption{client.MaxCount(5 * linearOpsMax)} // every append of five clients
			}
			call := h.Now()
			page, err := es.ReadStream(opCtx, ledger, stream, opts...)
			out := linear.StreamOutput{Revision: -1}
			switch {
			case errors.Is(err, client.ErrStreamNotFound): // no event yet
			case err != nil || (in.Kind == linear.StreamReadAll && !page.EndOfStream):
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
					out.Revision = int64(page.Events[len(page.Events)-1].Revision)
				}
				out.Events = linear.EncodeIDs(numbers...)
			}
			seen = out.Revision
			h.Add(clientID, call, in, out, true)
		}
		cancel()
	}
}

// check checks both histories; a violation fails the test with the
// seed and a visualization of the history, a check out of time is only
// logged.
func (w *linearWorkloads) check(t *testing.T, seed uint64) {
	t.Helper()
	offsets := w.offsets.Done()
	kept := linear.DropUnseenCommits(offsets)
	t.Logf("offsets history: %d commits of unknown outcome whose offset no fetch returned left out", len(offsets)-len(kept))
	linear.Check(t, seed, "offsets", linear.OffsetsModel, kept)
	ops := w.stream.Done()
	if w.finalErr != nil {
		t.Errorf("reading the linear stream after the heal: %v", w.finalErr)
	} else {
		if len(w.finalTries) > 0 {
			t.Logf("reading the linear stream after the heal took %d tries: %v", len(w.finalTries)+1, errors.Join(w.finalTries...))
		}
		before := len(ops)
		ops = linear.ResolveAppends(ops, w.final)
		t.Logf("stream history: %d appends of unknown outcome left out (never took effect), the others resolved from the %d events read after the heal", before-len(ops), len(w.final))
	}
	linear.Check(t, seed, "stream", linear.StreamModel, ops)
}
