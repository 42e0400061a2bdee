package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/streams"
)

// multiPairs is how many stream pairs the AppendMulti writers race on:
// pair k is stream pair-k in topic multi-a and in topic multi-b, always
// written together.
const multiPairs = 3

// multiIDs reads a stream's event ids in revision order; a stream never
// written has none. Reads wait while an AppendMulti holds the stream.
func multiIDs(ctx context.Context, client eventstorev1connect.EventStoreClient, topic, stream string) ([]string, error) {
	var ids []string
	var from *uint64
	for {
		resp, err := client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: topic, Stream: stream, FromRevision: from, MaxCount: 1000}))
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() == connect.CodeNotFound {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Msg.Events {
			if e.Revision != uint64(len(ids)) {
				return nil, fmt.Errorf("%s/%s: revision %d at position %d", topic, stream, e.Revision, len(ids))
			}
			ids = append(ids, e.Id)
		}
		if resp.Msg.EndOfStream || len(resp.Msg.Events) == 0 {
			return ids, nil
		}
		next := uint64(len(ids))
		from = &next
	}
}

// multiIDsSettled is multiIDs retried while the cluster elects leaders
// after a restart.
func multiIDsSettled(ctx context.Context, client eventstorev1connect.EventStoreClient, topic, stream string) ([]string, error) {
	const triesMax = 100
	for try := 1; ; try++ {
		ids, err := multiIDs(ctx, client, topic, stream)
		if err == nil || try == triesMax || connect.CodeOf(err) != connect.CodeUnavailable {
			return ids, err
		}
		time.Sleep(100 * time.Millisecond) // an election after the restart
	}
}

func expectAfter(ids []string) *eventstorev1.ExpectedRevision {
	if len(ids) == 0 {
		return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
	}
	return &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: uint64(len(ids) - 1)}}
}

// TestAppendMultiKill9: writers race AppendMultis over overlapping stream
// pairs of two topics, each expecting the revisions it read, while readers
// check that no AppendMulti is ever half visible (whichever stream of a
// pair they read first, every call id seen there is in the other stream
// read after it), and the server is SIGKILLed repeatedly. After each
// restart both streams of every pair hold the same calls in the same order
// and every acknowledged call is at the revision it was answered with.
func TestAppendMultiKill9(t *testing.T) {
	server := startCairn(t, "")
	appendMultiKills(t, []*cairnServer{server}, func(context.Context) *cairnServer { return server })
}

// TestClusterAppendMultiKill9 is TestAppendMultiKill9 on three processes,
// the topics' partitions led by different nodes, writers and readers
// calling through every node (which takes the leaderships a call needs),
// and each cycle SIGKILLs the node leading pair-0's partition of multi-a.
func TestClusterAppendMultiKill9(t *testing.T) {
	nodes := startCairnCluster(t)
	for _, topic := range []string{"multi-a", "multi-b"} {
		cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", "3", "--replication-factor", "3", "--config", "cleanup.policy=stream")
		waitDescribed(t, nodes[1], topic)
	}
	appendMultiKills(t, nodes, func(ctx context.Context) *cairnServer {
		lead := leaderOf(ctx, t, nodes, "multi-a", streams.Partition([]byte("pair-0"), 3))
		t.Logf("killing node %d, pair-0's leader in multi-a", lead)
		return nodes[lead-1]
	})
}

// appendMultiKills runs the writers and readers of TestAppendMultiKill9
// through nodes, killing victim's node each cycle.
func appendMultiKills(t *testing.T, nodes []*cairnServer, victim func(context.Context) *cairnServer) {
	clients := make([]eventstorev1connect.EventStoreClient, len(nodes))
	for i, n := range nodes {
		clients[i] = eventstorev1connect.NewEventStoreClient(http.DefaultClient, "http://"+n.httpAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const writers, cycles = 6, 3
	var mu sync.Mutex
	acked := map[string]uint64{} // call id → revision it was answered with, in pair k's streams
	pairOf := map[string]int{}
	var won, lost int
	for cycle := range cycles {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			client := clients[w%len(clients)]
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := (w + i) % multiPairs
					stream := fmt.Sprintf("pair-%d", k)
					callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
					a, errA := multiIDs(callCtx, client, "multi-a", stream)
					b, errB := multiIDs(callCtx, client, "multi-b", stream)
					if errA != nil || errB != nil {
						cancel()
						continue // the server is gone or restarting
					}
					id := uuid.NewString()
					resp, err := client.AppendMulti(callCtx, connect.NewRequest(&eventstorev1.AppendMultiRequest{Parts: []*eventstorev1.AppendPart{
						{Topic: "multi-a", Stream: stream, ExpectedRevision: expectAfter(a), Events: []*eventstorev1.Event{{Id: id, Type: "Paired", Data: []byte(`{}`)}}},
						{Topic: "multi-b", Stream: stream, ExpectedRevision: expectAfter(b), Events: []*eventstorev1.Event{{Id: id, Type: "Paired", Data: []byte(`{}`)}}},
					}}))
					cancel()
					mu.Lock()
					switch {
					case err == nil:
						won++
						if ra, rb := resp.Msg.Parts[0].FirstRevision, resp.Msg.Parts[1].FirstRevision; ra != uint64(len(a)) || rb != uint64(len(b)) {
							t.Errorf("%s: call %s answered at %d/%d, expected %d/%d", stream, id, ra, rb, len(a), len(b))
						}
						acked[id], pairOf[id] = resp.Msg.Parts[0].FirstRevision, k
					case connect.CodeOf(err) == connect.CodeFailedPrecondition:
						lost++
					}
					mu.Unlock()
				}
			})
		}
		for r := range 2 {
			client := clients[(r+1)%len(clients)]
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					stream := fmt.Sprintf("pair-%d", i%multiPairs)
					first, second := "multi-a", "multi-b"
					if r == 1 {
						first, second = second, first
					}
					callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
					seen, err1 := multiIDs(callCtx, client, first, stream)
					after, err2 := multiIDs(callCtx, client, second, stream)
					cancel()
					if err1 != nil || err2 != nil {
						continue
					}
					for _, id := range seen {
						if !slices.Contains(after, id) {
							t.Errorf("%s: call %s seen in %s, then missing from %s: half an AppendMulti visible", stream, id, first, second)
							return
						}
					}
				}
			})
		}
		time.Sleep(2*time.Second + time.Duration(cycle)*500*time.Millisecond)
		killed := victim(ctx)
		killed.Kill()
		close(stop)
		wg.Wait()
		killed.Restart()
		for k := range multiPairs {
			stream := fmt.Sprintf("pair-%d", k)
			client := clients[k%len(clients)]
			a, err := multiIDsSettled(ctx, client, "multi-a", stream)
			if err != nil {
				t.Fatal(err)
			}
			b, err := multiIDsSettled(ctx, client, "multi-b", stream)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a, b) {
				t.Fatalf("%s after restart %d: the two streams differ:\na %v\nb %v", stream, cycle+1, a, b)
			}
			mu.Lock()
			for id, rev := range acked {
				if pairOf[id] == k && (rev >= uint64(len(a)) || a[rev] != id) {
					t.Errorf("%s: acknowledged call %s not at revision %d", stream, id, rev)
				}
			}
			mu.Unlock()
		}
		t.Logf("cycle %d: %d AppendMultis acknowledged, %d lost their race so far, all verified", cycle+1, won, lost)
		if t.Failed() {
			return
		}
	}
	if won < writers {
		t.Fatalf("only %d AppendMultis acknowledged in %d cycles", won, cycles)
	}
}
