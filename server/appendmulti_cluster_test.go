package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/streams"
)

// Bounds of the cluster AppendMulti test.
const (
	amRacers       = 3  // one per node
	amCallsPerNode = 6  // AppendMultis each racer gets acknowledged
	amTriesMax     = 50 // tries of one call before the racer gives up
	amWaitMax      = 90 * time.Second
)

// amStreams names one stream of each partition of a topic of n partitions.
func amStreams(t *testing.T, n int32) []string {
	t.Helper()
	out := make([]string, n)
	found := int32(0)
	for i := 0; found < n && i < 10_000; i++ {
		s := fmt.Sprintf("acct-%d", i)
		if p := streams.Partition([]byte(s), n); out[p] == "" {
			out[p] = s
			found++
		}
	}
	if found < n {
		t.Fatalf("no stream for every one of %d partitions", n)
	}
	return out
}

// amParts is one AppendMulti of call over streams: an event per stream,
// its id naming the call and the stream, so a retry is recognised.
func amParts(topic string, names []string, call string, expected []client.Expected) []client.AppendPart {
	parts := make([]client.AppendPart, len(names))
	for i, s := range names {
		parts[i] = client.AppendPart{Topic: topic, Stream: s, Expected: expected[i],
			Events: []client.EventData{{ID: amID(call, s), Type: "Moved", Data: []byte(call)}}}
	}
	return parts
}

// amID is the event id of call's event on stream.
func amID(call, stream string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%s", call, stream)).String()
}

func amAll(n int, e client.Expected) []client.Expected {
	out := make([]client.Expected, n)
	for i := range out {
		out[i] = e
	}
	return out
}

// readAll reads stream through c.
func readAll(ctx context.Context, c *client.Client, topic, stream string) ([]client.RecordedEvent, error) {
	var out []client.RecordedEvent
	for ev, err := range c.ReadStreamAll(ctx, topic, stream) {
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// TestClusterAppendMultiAcrossNodes: three servers, an event-store topic
// of three partitions each led by another node, and AppendMultis over a
// stream of each partition served by every node (which takes the
// leaderships of the parts' partitions and of its transaction
// coordinator): one commits all its parts; one with a wrong expectation
// on one part writes none and names that part with its actual revision;
// racing calls through the three nodes, with the node leading a partition
// closed and started again among them, leave every stream with the same
// calls at the same revisions, read through every node: no call is seen
// in part.
func TestClusterAppendMultiAcrossNodes(t *testing.T) {
	tc := startCluster(t)
	const topic = "am-cluster"
	const n = 3
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated(topic, n, 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), amWaitMax)
	defer cancel()
	for i := range int32(n) {
		tc.leaderOf(topic, i)
		if err := tc.servers[i+1].Cluster().TransferLeader(ctx, topic, i, i+1); err != nil {
			t.Fatalf("lead %s-%d on node %d: %v", topic, i, i+1, err)
		}
	}
	names := amStreams(t, n)
	clients := map[int32]*client.Client{}
	connect := func(id int32) *client.Client {
		c, err := client.New("http://"+tc.servers[id].HTTPAddr(), client.WithRetry(3, 20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	for id := range tc.servers {
		clients[id] = connect(id)
	}

	res, err := clients[1].AppendMulti(ctx, amParts(topic, names, "first", amAll(n, client.NoStream))...)
	if err != nil {
		t.Fatalf("AppendMulti through node 1 over partitions led by nodes 1-3: %v", err)
	}
	for i, r := range res {
		if r.FirstRevision != 0 || r.Duplicate {
			t.Fatalf("part %d: %+v, want revision 0", i, r)
		}
	}
	wrong := amAll(n, client.Exact(0))
	wrong[1] = client.Exact(5)
	_, err = clients[2].AppendMulti(ctx, amParts(topic, names, "wrong", wrong)...)
	var me *client.AppendMultiError
	if !errors.As(err, &me) || len(me.Mismatches) != 1 || me.Mismatches[0].Part != 1 || me.Mismatches[0].Actual != 0 {
		t.Fatalf("AppendMulti with part 1 at a wrong revision: %v, want part 1 named with its revision 0", err)
	}

	// Racing calls through every node; node 3 closes and starts again.
	addrs := &httpAddrs{addrs: map[int32]string{}}
	for id, srv := range tc.servers {
		addrs.set(id, srv.HTTPAddr())
	}
	var wg sync.WaitGroup
	var retries atomic.Int64 // calls refused (a leadership moved away mid-call) and tried again
	var mu sync.Mutex
	var failures []error
	acked := map[int32]int{}
	for id := int32(1); id <= amRacers; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < amCallsPerNode && ctx.Err() == nil; k++ {
				call := fmt.Sprintf("n%d-c%d", id, k)
				if err := amCall(ctx, addrs, id, topic, names, call, &retries); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				acked[id]++
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		done := acked[3]
		mu.Unlock()
		if done >= 2 || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling the racers' counter
	}
	addrs.set(3, addrs.get(1)) // racer 3 goes through node 1 meanwhile
	tc.stop(3)
	tc.restart(3)
	addrs.set(3, tc.servers[3].HTTPAddr())
	wg.Wait()
	t.Logf("%d racing calls acknowledged after %d refused tries", amRacers*amCallsPerNode, retries.Load())
	for _, err := range failures {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Every stream holds the same calls at the same revisions, on every node.
	var want []string
	for id := range tc.servers {
		c := connect(id)
		for i, s := range names {
			var evs []client.RecordedEvent
			var err error
			for try := 0; try < amTriesMax; try++ {
				if evs, err = readAll(ctx, c, topic, s); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond) // a leader being elected after the restart
			}
			if err != nil {
				t.Fatalf("read %s through node %d: %v", s, id, err)
			}
			var got []string
			for r, ev := range evs {
				if ev.Revision != uint64(r) || ev.ID != amID(string(ev.Data), s) {
					t.Fatalf("%s through node %d: event %s (%s) at revision %d, position %d", s, id, ev.ID, ev.Data, ev.Revision, r)
				}
				got = append(got, string(ev.Data))
			}
			if want == nil {
				want = got
				if wantCalls := 1 + amRacers*amCallsPerNode; len(want) != wantCalls {
					t.Fatalf("%s through node %d: %d calls %v, want %d", s, id, len(want), want, wantCalls)
				}
				continue
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("stream %d (%s) through node %d holds calls %v, another %v: a call seen in part", i, s, id, got, want)
			}
		}
	}
}

// amCall runs one AppendMulti of call through node id (the address addrs
// has for it) until it is acknowledged; a retry of a
// call that was written is answered as a duplicate.
func amCall(ctx context.Context, addrs *httpAddrs, id int32, topic string, names []string, call string, retries *atomic.Int64) error {
	var last error
	for try := 0; try < amTriesMax && ctx.Err() == nil; try++ {
		if try > 0 {
			retries.Add(1)
		}
		c, err := client.New("http://"+addrs.get(id), client.WithRetry(1, 20*time.Millisecond))
		if err != nil {
			return err
		}
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = c.AppendMulti(callCtx, amParts(topic, names, call, amAll(len(names), client.Any))...)
		cancel()
		c.Close()
		if err == nil {
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeAborted, connect.CodeCanceled, connect.CodeDeadlineExceeded:
			last = err
			time.Sleep(20 * time.Millisecond) // a leadership moving, a node away
		default:
			return fmt.Errorf("call %s through node %d: %w", call, id, err)
		}
	}
	return fmt.Errorf("call %s through node %d: not acknowledged after %d tries: %v", call, id, amTriesMax, last)
}
