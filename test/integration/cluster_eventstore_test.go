package integration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/client"
)

// esWriter appends one event at a time to its stream through one node at
// the exact revision after its last acknowledged append, trying an
// unanswered append again with the same event id.
type esWriter struct {
	stream string
	node   *cairnServer
	mu     sync.Mutex
	ids    []string    // acknowledged, by revision
	at     []time.Time // when each was acknowledged
	fatal  error
	last   error         // the last failed try
	pace   time.Duration // between an acknowledgement and the next append; none when zero
	limit  int           // appends at most; clusterRecordsMax when zero
}

func (w *esWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func (w *esWriter) run(ctx context.Context, topic string) {
	c, err := client.New("http://"+w.node.httpAddr, client.WithRetry(3, 20*time.Millisecond))
	if err != nil {
		w.fail(err)
		return
	}
	defer c.Close()
	for rev := uint64(0); rev < uint64(cmp.Or(w.limit, clusterRecordsMax)) && ctx.Err() == nil; rev++ {
		if w.pace > 0 && rev > 0 {
			time.Sleep(w.pace) // a rate, not a wait for anything
		}
		ev := client.EventData{ID: w.eventID(rev), Type: "Tick"}
		for ctx.Err() == nil {
			res, err := c.Append(ctx, topic, w.stream, client.ExpectedAfter(int64(rev)-1), ev)
			if err == nil {
				if res.FirstRevision != rev || res.LastRevision != rev {
					w.fail(fmt.Errorf("%s: append at revision %d acknowledged at %d..%d", w.stream, rev, res.FirstRevision, res.LastRevision))
					return
				}
				w.mu.Lock()
				w.ids = append(w.ids, ev.ID)
				w.at = append(w.at, time.Now())
				w.mu.Unlock()
				break
			}
			// The node or the leader is away (a connection cut mid-reply
			// is unavailable, a reset one canceled); anything else is a
			// failure.
			if code := connect.CodeOf(err); ctx.Err() == nil && code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded && code != connect.CodeCanceled {
				w.fail(fmt.Errorf("%s: append at revision %d: %w", w.stream, rev, err))
				return
			}
			w.mu.Lock()
			w.last = err
			w.mu.Unlock()
			time.Sleep(50 * time.Millisecond) // between tries while the node or its leader is away
		}
	}
}

// eventID is the id of the writer's event at rev, the same on every try.
func (w *esWriter) eventID(rev uint64) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%d", w.stream, rev)).String()
}

func (w *esWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fatal = err
}

func waitESWriters(t *testing.T, writers []*esWriter, more int) {
	t.Helper()
	deadline := time.Now().Add(clusterStageWaitMax)
	for _, w := range writers {
		want := w.count() + more
		for w.count() < want {
			w.mu.Lock()
			fatal := w.fatal
			w.mu.Unlock()
			if fatal != nil {
				t.Fatal(fatal)
			}
			if time.Now().After(deadline) {
				for _, o := range writers {
					o.mu.Lock()
					t.Logf("%s: %d acknowledged, last failed try: %v", o.stream, len(o.ids), o.last)
					o.mu.Unlock()
				}
				w.mu.Lock()
				last := w.last
				w.mu.Unlock()
				t.Fatalf("%s: %d appends acknowledged after %s, want %d (last failed try: %v)", w.stream, w.count(), clusterStageWaitMax, want, last)
			}
			time.Sleep(10 * time.Millisecond) // polling a counter the writers raise
		}
	}
}

// TestClusterProcessesEventStoreSurvivesLeaderKill: three `cairn serve`
// processes and an RF 3 event-store topic of one partition; three writers
// append at exact expected revisions, each through another node, while
// the partition's leader is SIGKILLed and restarted. Every acknowledged
// append is then read through every node once at its revision with its
// event id, and an append at a wrong expected revision is refused with
// the stream's actual revision. A writer's retry of an append the killed
// leader committed but never answered is acknowledged (a duplicate) by
// the new leader: it was once refused for good, its wait naming term 0.
func TestClusterProcessesEventStoreSurvivesLeaderKill(t *testing.T) {
	nodes := startCairnCluster(t)
	const topic = "ledger"
	cairnOK(t, nodes[0], "", "topic", "create", topic, "--replication-factor", "3", "--config", "cleanup.policy=stream")
	ctx, cancel := context.WithTimeout(context.Background(), 6*clusterStageWaitMax)
	defer cancel()
	lead := waitLeader(ctx, t, nodes, topic)

	writeCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var writers []*esWriter
	for i, n := range nodes {
		w := &esWriter{stream: fmt.Sprintf("account-%d", i+1), node: n}
		writers = append(writers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(writeCtx, topic) }()
	}
	waitESWriters(t, writers, 50)
	nodes[lead-1].Kill()
	var survivors []*esWriter
	for i, w := range writers {
		if int32(i+1) != lead {
			survivors = append(survivors, w)
		}
	}
	waitESWriters(t, survivors, 50)
	nodes[lead-1].Restart()
	waitESWriters(t, writers, 50)
	stop()
	wg.Wait()

	checkESWriters(ctx, t, nodes, topic, writers)
	c, err := client.New("http://" + nodes[lead-1].httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	page, err := c.ReadStream(ctx, topic, writers[0].stream, client.Backwards(), client.MaxCount(1))
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("read the last event of %s: %v", writers[0].stream, err)
	}
	last := int64(page.Events[0].Revision)
	_, err = c.Append(ctx, topic, writers[0].stream, client.Exact(0), client.EventData{Type: "Late"})
	var wrong *client.WrongExpectedRevisionError
	if !errors.As(err, &wrong) || wrong.Actual != last {
		t.Fatalf("append at revision 0 of %s (at %d): %v", writers[0].stream, last, err)
	}
	t.Logf("node %d (leader) SIGKILLed and restarted; %d, %d and %d appends acknowledged", lead,
		len(writers[0].ids), len(writers[1].ids), len(writers[2].ids))
}

// waitLeader waits until the cluster names a leader of topic's partition 0
// and returns it.
func waitLeader(ctx context.Context, t *testing.T, nodes []*cairnServer, topic string) int32 {
	t.Helper()
	admin := kadm.NewClient(newKgo(t, nodes[0].kafkaAddr, kgo.SeedBrokers(kafkaAddrs(nodes)...), kgo.MetadataMinAge(100*time.Millisecond)))
	deadline := time.Now().Add(clusterStageWaitMax)
	for {
		topics, err := admin.ListTopics(ctx, topic)
		if err == nil {
			if p, ok := topics[topic].Partitions[0]; ok && p.Leader >= 1 && int(p.Leader) <= len(nodes) {
				return p.Leader
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader of %s-0 after %s (%v)", topic, clusterStageWaitMax, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the cluster's metadata
	}
}

// checkESWriters reads each writer's stream through every node: every
// acknowledged append once, at its revision, with its event id, and after
// them nothing but the writer's last append (stopped unanswered).
func checkESWriters(ctx context.Context, t *testing.T, nodes []*cairnServer, topic string, writers []*esWriter) {
	t.Helper()
	for _, n := range nodes {
		c, err := client.New("http://"+n.httpAddr, client.WithRetry(20, 50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range writers {
			i := 0
			for ev, err := range c.ReadStreamAll(ctx, topic, w.stream) {
				if err != nil {
					t.Fatalf("read %s through %s: %v", w.stream, n.httpAddr, err)
				}
				if i > len(w.ids) || i == len(w.ids) && ev.ID != w.eventID(uint64(i)) {
					t.Fatalf("%s through %s: %s at revision %d, %d appends acknowledged", w.stream, n.httpAddr, ev.ID, ev.Revision, len(w.ids))
				}
				if i == len(w.ids) {
					i++ // the writer's last append, stopped unanswered, may be there
					continue
				}
				if ev.Revision != uint64(i) || ev.ID != w.ids[i] {
					t.Fatalf("%s through %s: revision %d holds %s at revision %d, acknowledged %s", w.stream, n.httpAddr, i, ev.ID, ev.Revision, w.ids[i])
				}
				i++
			}
			if i < len(w.ids) {
				t.Fatalf("%s through %s: read to revision %d of %d acknowledged", w.stream, n.httpAddr, i, len(w.ids))
			}
		}
		c.Close()
	}
}
