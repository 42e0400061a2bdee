package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
)

// Bounds of the event-store failover test.
const (
	esFailoverStage    = 40 // appends acknowledged per stream between two stages
	esFailoverMax      = 2000
	esFailoverAttempts = 3 // the client's own tries of one call
)

// httpAddrs is each node's HTTP address, replaced when a node restarts on
// another port.
type httpAddrs struct {
	mu    sync.Mutex
	addrs map[int32]string
}

func (h *httpAddrs) get(id int32) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addrs[id]
}

func (h *httpAddrs) set(id int32, addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addrs[id] = addr
}

// streamWriter appends one event at a time to its stream through one node,
// each at the exact revision after the last acknowledged, retrying an
// unanswered append with the same event id until it is acknowledged.
type streamWriter struct {
	stream string
	via    int32
	mu     sync.Mutex
	acked  []client.AppendResult // by revision
	ids    []string
	errs   int   // calls that failed and were tried again
	last   error // the last of them
	fatal  error // an answer the writer must never get
}

func (w *streamWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *streamWriter) run(ctx context.Context, addrs *httpAddrs, topic string) {
	for rev := uint64(0); rev < esFailoverMax && ctx.Err() == nil; rev++ {
		ev := client.EventData{ID: uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", w.stream, rev)).String(), Type: "Tick", Data: fmt.Appendf(nil, "%s/%d", w.stream, rev)}
		expected := client.ExpectedAfter(int64(rev) - 1)
		res, err := w.appendOnce(ctx, addrs, topic, expected, ev)
		if err != nil {
			return
		}
		w.mu.Lock()
		if res.FirstRevision != rev || res.LastRevision != rev {
			w.fatal = fmt.Errorf("%s: append at expected %s acknowledged at revisions %d..%d", w.stream, expected, res.FirstRevision, res.LastRevision)
		}
		w.acked = append(w.acked, res)
		w.ids = append(w.ids, ev.ID)
		w.mu.Unlock()
		if w.fatal != nil {
			return
		}
	}
}

// appendOnce appends ev until it is acknowledged (a retry of one that was
// written answers Duplicate at the same revision) or ctx ends.
func (w *streamWriter) appendOnce(ctx context.Context, addrs *httpAddrs, topic string, expected client.Expected, ev client.EventData) (client.AppendResult, error) {
	for ctx.Err() == nil {
		c, err := client.New("http://"+addrs.get(w.via), client.WithRetry(esFailoverAttempts, 20*time.Millisecond))
		if err != nil {
			return client.AppendResult{}, err
		}
		callCtx, cancel := context.WithTimeout(ctx, failoverStageWaitMax)
		res, err := c.Append(callCtx, topic, w.stream, expected, ev)
		cancel()
		c.Close()
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			break // the test stopped the writer: the outcome stays unknown
		}
		w.mu.Lock()
		// Only an unreachable node or leader is worth another try; a
		// wrong expected revision would mean an append renumbered.
		// connect reports a connection reset by a closing node as
		// canceled (the client does not retry it): with ctx live, that
		// is the node going away too.
		if code := connect.CodeOf(err); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded && code != connect.CodeCanceled {
			w.fatal = fmt.Errorf("%s: append of %s: %w", w.stream, ev.ID, err)
			w.mu.Unlock()
			return client.AppendResult{}, w.fatal
		}
		w.errs++
		w.last = err
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // the node or its leader is away: a pause between tries
		}
	}
	return client.AppendResult{}, ctx.Err()
}

// waitWriters waits until every writer has n acknowledged appends.
func waitWriters(t *testing.T, writers []*streamWriter, n int) {
	t.Helper()
	n = min(n, esFailoverMax)
	deadline := time.Now().Add(failoverStageWaitMax)
	for _, w := range writers {
		for w.count() < n {
			w.mu.Lock()
			fatal := w.fatal
			w.mu.Unlock()
			if fatal != nil {
				t.Fatal(fatal)
			}
			if time.Now().After(deadline) {
				w.mu.Lock()
				last := w.last
				w.mu.Unlock()
				t.Fatalf("%s through node %d: %d appends acknowledged after %s, want %d (last failure: %v)", w.stream, w.via, w.count(), failoverStageWaitMax, n, last)
			}
			time.Sleep(10 * time.Millisecond) // polling a counter the writers raise
		}
	}
}

// streamSubscriber reads one stream through a subscription from its start.
type streamSubscriber struct {
	mu     sync.Mutex
	events []client.RecordedEvent
	err    error
}

func (s *streamSubscriber) run(ctx context.Context, c *client.Client, topic, stream string) {
	sub, err := c.Subscribe(ctx, topic, stream)
	if err == nil {
		defer sub.Close()
		for {
			var m client.Message
			if m, err = sub.Recv(); err != nil {
				break
			}
			if m.Kind == client.MessageEvent {
				s.mu.Lock()
				s.events = append(s.events, m.Event)
				s.mu.Unlock()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() == nil {
		s.err = err
	}
}

func (s *streamSubscriber) count() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events), s.err
}

// TestClusterEventStoreFailover: three servers in one process, an RF 3
// event-store topic of one partition, three writers appending to their
// own streams at exact expected revisions, each through another node,
// and a subscription to each stream through a node that follows the
// partition. The partition's leader is closed and started again. Every
// acknowledged append is then read through every node once at its
// revision with its event id, and is on every replica once at its
// acknowledged position; no retried append was renumbered or refused;
// each subscription delivered every revision in order, resuming across
// the failover; and an append at a wrong expected revision through a
// follower is refused with the stream's actual revision.
func TestClusterEventStoreFailover(t *testing.T) {
	tc := startCluster(t)
	const topic = "es-failover"
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated(topic, 1, 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	lead := tc.leaderOf(topic, 0)
	follower := int32(1)
	for follower == lead {
		follower++
	}
	addrs := &httpAddrs{addrs: map[int32]string{}}
	for id, s := range tc.servers {
		addrs.set(id, s.HTTPAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*failoverStageWaitMax)
	defer cancel()

	var writers []*streamWriter
	var subs []*streamSubscriber
	runCtx, stop := context.WithCancel(ctx)
	subCtx, stopSubs := context.WithCancel(ctx)
	var wg, subsWG sync.WaitGroup
	defer func() { stop(); wg.Wait(); stopSubs(); subsWG.Wait() }()
	subClient, err := client.New("http://"+addrs.get(follower), client.WithRetry(20, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer subClient.Close()
	for id := int32(1); id <= 3; id++ {
		w := &streamWriter{stream: fmt.Sprintf("ticks-via-%d", id), via: id}
		writers = append(writers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(runCtx, addrs, topic) }()
	}
	waitWriters(t, writers, 1) // the streams exist before their subscriptions start
	for _, w := range writers {
		s := &streamSubscriber{}
		subs = append(subs, s)
		subsWG.Add(1)
		go func() { defer subsWG.Done(); s.run(subCtx, subClient, topic, w.stream) }()
	}

	waitWriters(t, writers, esFailoverStage)
	tc.stop(lead)
	newLead := tc.leaderOf(topic, 0)
	var survivors []*streamWriter
	for _, w := range writers {
		if w.via != lead {
			survivors = append(survivors, w)
		}
	}
	waitWriters(t, survivors, survivors[0].count()+esFailoverStage)
	tc.restart(lead)
	addrs.set(lead, tc.servers[lead].HTTPAddr())
	for _, w := range writers {
		waitWriters(t, []*streamWriter{w}, w.count()+esFailoverStage)
	}
	stop()
	wg.Wait()
	for i, w := range writers {
		if w.fatal != nil {
			t.Fatal(w.fatal)
		}
		waitSubscriber(t, subs[i], w)
	}
	stopSubs()
	subsWG.Wait()

	total := 0
	for i, w := range writers {
		total += len(w.acked)
		checkSubscriber(t, subs[i], w)
		checkStreamReads(ctx, t, tc, topic, w)
	}
	tc.waitCaughtUp(t, topic, streamAcks(writers))
	checkStreamReplicas(t, tc, topic, writers)
	checkWrongExpected(ctx, t, addrs.get(follower), topic, writers[0])
	t.Logf("node %d (leader) closed, node %d took over; %d appends acknowledged, %d calls tried again (%d, %d, %d)",
		lead, newLead, total, writers[0].errs+writers[1].errs+writers[2].errs, writers[0].errs, writers[1].errs, writers[2].errs)
}

// waitSubscriber waits until the subscription delivered as many events
// as the writer had acknowledged, failing when it ended.
func waitSubscriber(t *testing.T, s *streamSubscriber, w *streamWriter) {
	t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		n, err := s.count()
		if err != nil {
			t.Fatalf("%s: the subscription ended: %v", w.stream, err)
		}
		if n >= len(w.acked) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the subscription delivered %d of %d events", w.stream, n, len(w.acked))
		}
		time.Sleep(10 * time.Millisecond) // polling what the subscription delivered
	}
}

// checkSubscriber: the subscription delivered the writer's acknowledged
// events in revision order, each once, with their ids.
func checkSubscriber(t *testing.T, s *streamSubscriber, w *streamWriter) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ev := range s.events[:len(w.acked)] {
		if ev.Revision != uint64(i) || ev.ID != w.ids[i] {
			t.Fatalf("%s: the subscription's event %d is %s at revision %d, acknowledged %s", w.stream, i, ev.ID, ev.Revision, w.ids[i])
		}
	}
}

// checkStreamReads reads the writer's stream through every node: each
// acknowledged event once, at its revision and position.
func checkStreamReads(ctx context.Context, t *testing.T, tc *testCluster, topic string, w *streamWriter) {
	t.Helper()
	for id, s := range tc.servers {
		c, err := client.New("http://"+s.HTTPAddr(), client.WithRetry(20, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for ev, err := range c.ReadStreamAll(ctx, topic, w.stream) {
			if err != nil {
				t.Fatalf("node %d: read %s: %v", id, w.stream, err)
			}
			if i >= len(w.acked) {
				break // appended after the writer's last acknowledgement was recorded
			}
			if ev.Revision != uint64(i) || ev.ID != w.ids[i] || ev.Position != w.acked[i].Position {
				t.Fatalf("node %d: %s revision %d: read %s at revision %d %s, acknowledged %s at %s",
					id, w.stream, i, ev.ID, ev.Revision, ev.Position, w.ids[i], w.acked[i].Position)
			}
			i++
		}
		c.Close()
		if i < len(w.acked) {
			t.Fatalf("node %d: %s read to revision %d, %d acknowledged", id, w.stream, i, len(w.acked))
		}
	}
}

// streamAcks is the writers' acknowledgements as the failover test's
// acks, by event data.
func streamAcks(writers []*streamWriter) map[string]ack {
	out := map[string]ack{}
	for _, w := range writers {
		for rev, res := range w.acked {
			out[fmt.Sprintf("%s/%d", w.stream, rev)] = ack{partition: res.Position.Partition, offset: res.Position.Offset}
		}
	}
	return out
}

// checkStreamReplicas: every acknowledged event is on every node's
// replica once, at its acknowledged position.
func checkStreamReplicas(t *testing.T, tc *testCluster, topic string, writers []*streamWriter) {
	t.Helper()
	acked := streamAcks(writers)
	for id, s := range tc.servers {
		p, err := s.Cluster().Partition(topic, 0)
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		checkAcked(t, fmt.Sprintf("node %d %s-0", id, topic), 0, replicaRecords(t, p), acked)
	}
}

// checkWrongExpected: an append at a revision the stream is past, through
// a follower, is refused with the stream's actual revision.
func checkWrongExpected(ctx context.Context, t *testing.T, addr, topic string, w *streamWriter) {
	t.Helper()
	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	page, err := c.ReadStream(ctx, topic, w.stream, client.Backwards(), client.MaxCount(1))
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("read the last event of %s: %v", w.stream, err)
	}
	last := int64(page.Events[0].Revision) // the writer's last append may be written unacknowledged
	_, err = c.Append(ctx, topic, w.stream, client.Exact(uint64(last-1)), client.EventData{Type: "Late", Data: []byte("late")})
	var wrong *client.WrongExpectedRevisionError
	if !errors.As(err, &wrong) || wrong.Actual != last {
		t.Fatalf("append at revision %d of %s (at %d): %v", last-1, w.stream, last, err)
	}
}
