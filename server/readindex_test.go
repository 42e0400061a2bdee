package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/internal/faultproxy"
)

// pausableClock follows the real time until paused, then stands still
// until resumed, when it jumps to the real time: a node on it stops
// ticking, as one stopped by SIGSTOP, so its Raft groups keep the
// leadership they had (no CheckQuorum step-down) while the test reads
// from it.
type pausableClock struct {
	*env.ManualClock
	paused atomic.Bool
}

// readIndexClockStep is how often the pausable clock catches up with the
// real time.
const readIndexClockStep = 2 * time.Millisecond

// readIndexBlockedFor is how long a read on the paused leader must stay
// unanswered to count as blocked rather than answered.
const readIndexBlockedFor = time.Second

func newPausableClock(t *testing.T) *pausableClock {
	c := &pausableClock{ManualClock: env.NewManualClock(time.Now())}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(readIndexClockStep)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if d := time.Since(c.Now()); !c.paused.Load() && d > 0 {
					c.Advance(d)
				}
			}
		}
	}()
	// Registered before the cluster's, so it runs after the nodes closed.
	t.Cleanup(func() { close(stop); <-done })
	return c
}

// cutAndPause stops the isolated node's clock and black-holes its Raft
// traffic: it still believes it leads what it led, and answers on its
// Kafka and HTTP listeners.
func cutAndPause(tc *testCluster, clock *pausableClock) {
	clock.paused.Store(true)
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Blackhole})
}

// ledBy hands partition index of topic to node unless it leads it.
func ledBy(ctx context.Context, t *testing.T, tc *testCluster, topic string, index, node int32) {
	t.Helper()
	if tc.leaderOf(topic, index) == node {
		return
	}
	if err := tc.servers[node].Cluster().TransferLeader(ctx, topic, index, node); err != nil {
		t.Fatalf("hand %s-%d to node %d: %v", topic, index, node, err)
	}
	deadline := time.Now().Add(failoverStageWaitMax)
	for tc.leaderOf(topic, index) != node {
		if time.Now().After(deadline) {
			t.Fatalf("node %d never led %s-%d", node, topic, index)
		}
		time.Sleep(5 * time.Millisecond) // polling the leaders the nodes report
	}
}

// commitOffsetTo commits one offset for group to node through cl, a
// client of that node, retried while the node is not (yet) its
// coordinator. Sent to the node itself, never through FindCoordinator, so
// that no commit reaches a coordinator the test has cut off.
func commitOffsetTo(ctx context.Context, t *testing.T, cl *kgo.Client, node int32, group, topic string, at int64) {
	t.Helper()
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		err := func() error {
			req := kmsg.NewPtrOffsetCommitRequest()
			req.Group, req.Generation = group, -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = 0, at, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			resp, err := req.RequestWith(callCtx, cl.Broker(int(node)))
			if err != nil {
				return err
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						return err
					}
				}
			}
			return nil
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit %s-0 at %d for %s on node %d: %v", topic, at, group, node, err)
		}
		time.Sleep(groupFailoverOffsetPoll) // the coordinator is moving or loading
	}
}

// fetchedOffset is an OffsetFetch answer for partition 0 of one topic.
type fetchedOffset struct {
	at   int64
	code int16 // the group's or the partition's error code
	err  error // the request's
}

// fetchOffsetFrom sends one OffsetFetch to node through cl, a client
// that already has a connection to it, so that its answer (an offset or an
// error code) is seen as the node gave it.
func fetchOffsetFrom(ctx context.Context, cl *kgo.Client, node int32, group, topic string) fetchedOffset {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group // up to v7
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	g := kmsg.NewOffsetFetchRequestGroup() // v8 on
	g.Group = group
	gt := kmsg.NewOffsetFetchRequestGroupTopic()
	gt.Topic, gt.Partitions = topic, []int32{0}
	g.Topics = append(g.Topics, gt)
	req.Groups = append(req.Groups, g)
	resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
	if err != nil {
		return fetchedOffset{err: err}
	}
	if len(resp.Groups) > 0 {
		rg := resp.Groups[0]
		if rg.ErrorCode != 0 {
			return fetchedOffset{code: rg.ErrorCode}
		}
		for _, t := range rg.Topics {
			for _, p := range t.Partitions {
				return fetchedOffset{at: p.Offset, code: p.ErrorCode}
			}
		}
		return fetchedOffset{err: errors.New("no partition in the answer")}
	}
	if resp.ErrorCode != 0 {
		return fetchedOffset{code: resp.ErrorCode}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			return fetchedOffset{at: p.Offset, code: p.ErrorCode}
		}
	}
	return fetchedOffset{err: errors.New("no partition in the answer")}
}

// newClientOf is a client of the node at addr that does not retry.
func newClientOf(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkNotStale fails the test when a deposed coordinator answered the
// offset a new coordinator has replaced.
func checkNotStale(t *testing.T, got fetchedOffset, stale int64) {
	t.Helper()
	switch {
	case got.err != nil:
		t.Fatalf("OffsetFetch on the cut-off coordinator: %v", got.err)
	case got.code == kerr.NotCoordinator.Code || got.code == kerr.CoordinatorNotAvailable.Code:
	case got.code != 0:
		t.Fatalf("OffsetFetch on the cut-off coordinator: error %v, want NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE", kerr.ErrorForCode(got.code))
	default:
		t.Fatalf("the cut-off coordinator answered offset %d (the one it held: %d) after a new coordinator took a commit", got.at, stale)
	}
}

// TestClusterOffsetFetchOnDeposedCoordinator: the coordinator of a group
// (the leader of __consumer_offsets-0) is paused (its clock stops: no
// ticks, so no CheckQuorum step-down) and black-holed from the other two,
// which elect a new leader and take a newer commit for the group. An
// OffsetFetch sent to the old coordinator, which still believes it leads,
// must not answer the offset it holds: it blocks while the node cannot
// hear a quorum, and once resumed it steps down and answers
// NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE).
func TestClusterOffsetFetchOnDeposedCoordinator(t *testing.T) {
	clock := newPausableClock(t)
	tc := startClusterWith(t, &testCluster{t: t, proxied: true, clocks: map[int32]env.Clock{isolated: clock}})
	const topic, group = "deposed-coordinator", "deposed-coordinator-group"
	const before, after = 10, 20
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)
	admin := kadm.NewClient(newFailoverClient(t, tc))
	// The first lookup creates the offsets topic (and may answer
	// COORDINATOR_NOT_AVAILABLE meanwhile); ledBy waits for its leader.
	_ = admin.FindGroupCoordinators(ctx, group)
	ledBy(ctx, t, tc, groups.OffsetsTopic, 0, isolated)
	// Connected to the coordinator before the cut, so that the fetch after
	// it is sent at once.
	staleClient := newClientOf(t, tc.servers[isolated].KafkaAddr())
	commitOffsetTo(ctx, t, staleClient, isolated, group, topic, before)
	if got := fetchOffsetFrom(ctx, staleClient, isolated, group, topic); got.err != nil || got.code != 0 || got.at != before {
		t.Fatalf("OffsetFetch on the coordinator before the cut: %+v, want %d", got, before)
	}

	cutAndPause(tc, clock)
	newLead := tc.majorityLeader(groups.OffsetsTopic, 0)
	commitOffsetTo(ctx, t, newClientOf(t, tc.servers[newLead].KafkaAddr()), newLead, group, topic, after)
	t.Logf("node %d coordinates %s after the cut and took offset %d", newLead, group, after)

	answer := make(chan fetchedOffset, 1)
	go func() { answer <- fetchOffsetFrom(ctx, staleClient, isolated, group, topic) }()
	select {
	case got := <-answer:
		checkNotStale(t, got, before)
		t.Logf("the paused coordinator refused the fetch at once: %v", kerr.ErrorForCode(got.code))
	case <-time.After(readIndexBlockedFor):
		clock.paused.Store(false) // it ticks again: CheckQuorum deposes it
		select {
		case got := <-answer:
			checkNotStale(t, got, before)
			t.Logf("the paused coordinator blocked the fetch, then answered %v", kerr.ErrorForCode(got.code))
		case <-time.After(failoverStageWaitMax):
			t.Fatalf("the resumed coordinator did not answer the fetch within %s", failoverStageWaitMax)
		}
	}
	clock.paused.Store(false)
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
	if got := committedOffsets(ctx, t, tc, group, topic); got[0] != after {
		t.Fatalf("committed offset %d after healing, want %d", got[0], after)
	}
}

// TestClusterEventStoreReadOnDeposedLeader: the leader of a stream's
// partition is paused and black-holed; the other two elect a leader that
// takes another append. ReadStream and GetStreamMetadata on the old
// leader, which still believes it leads, must not answer without that
// event: they block, then answer UNAVAILABLE once it stepped down.
func TestClusterEventStoreReadOnDeposedLeader(t *testing.T) {
	clock := newPausableClock(t)
	tc := startClusterWith(t, &testCluster{t: t, proxied: true, clocks: map[int32]env.Clock{isolated: clock}})
	const topic, stream = "deposed-leader", "orders-1"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	if _, err := tc.servers[1].Cluster().CreateTopicReplicated(topic, 1, 3, map[string]string{"cleanup.policy": "stream"}, false); err != nil {
		t.Fatal(err)
	}
	ledBy(ctx, t, tc, topic, 0, isolated)
	stale, err := client.New("http://" + tc.servers[isolated].HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if _, err := stale.Append(ctx, topic, stream, client.NoStream, client.EventData{Type: "Placed", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}

	cutAndPause(tc, clock)
	newLead := tc.majorityLeader(topic, 0)
	fresh, err := client.New("http://"+tc.servers[newLead].HTTPAddr(), client.WithRetry(20, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.Append(ctx, topic, stream, client.Exact(0), client.EventData{Type: "Paid", Data: []byte(`{}`)}); err != nil {
		t.Fatalf("append through the new leader %d: %v", newLead, err)
	}

	type answer struct {
		what string
		last int64
		err  error
	}
	answers := make(chan answer, 2)
	go func() {
		page, err := stale.ReadStream(ctx, topic, stream)
		a := answer{what: "ReadStream", err: err}
		if err == nil {
			a.last = int64(len(page.Events)) - 1
		}
		answers <- a
	}()
	go func() {
		info, err := stale.GetStreamMetadata(ctx, topic, stream)
		answers <- answer{what: "GetStreamMetadata", last: info.LastRevision, err: err}
	}()
	check := func(a answer) {
		t.Helper()
		switch {
		case a.err == nil && a.last < 1:
			t.Fatalf("%s on the cut-off leader answered last revision %d after the new leader appended revision 1", a.what, a.last)
		case a.err != nil && connect.CodeOf(a.err) != connect.CodeUnavailable:
			t.Fatalf("%s on the cut-off leader: %v, want UNAVAILABLE", a.what, a.err)
		}
		t.Logf("%s on the cut-off leader: %v", a.what, a.err)
	}
	blocked := time.After(readIndexBlockedFor)
	for n := 0; n < 2; {
		select {
		case a := <-answers:
			check(a)
			n++
		case <-blocked:
			t.Logf("%d of the reads on the cut-off leader still blocked after %s; resuming it", 2-n, readIndexBlockedFor)
			clock.paused.Store(false) // it ticks again: CheckQuorum deposes it
		case <-time.After(failoverStageWaitMax):
			t.Fatalf("the cut-off leader did not answer its reads within %s of being resumed", failoverStageWaitMax)
		}
	}
	clock.paused.Store(false)
	tc.proxies[isolated].SetBoth(faultproxy.Fault{Kind: faultproxy.Pass})
}
