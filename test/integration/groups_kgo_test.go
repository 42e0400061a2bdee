package integration

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupWaitMax bounds waiting for a group to settle or records to arrive.
const groupWaitMax = 30 * time.Second

// groupMember is one franz-go group consumer polling in the background and
// recording the values it consumed and the partitions it was given.
type groupMember struct {
	client *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	values   map[string]int
	revoked  int // partitions taken away over the member's life
	assigned map[int32]bool
}

func startGroupMember(t *testing.T, addr, group, topic string, options ...kgo.Opt) *groupMember {
	t.Helper()
	m := &groupMember{values: map[string]int{}, assigned: map[int32]bool{}, done: make(chan struct{})}
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.FetchMaxWait(300 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range assigned[topic] {
				m.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, client *kgo.Client, revoked map[string][]int32) {
			// What the default callback does, which this one replaces: commit
			// what was polled, so the next owner starts after it.
			if err := client.CommitUncommittedOffsets(ctx); err != nil {
				t.Logf("commit on revoke: %v", err)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range revoked[topic] {
				delete(m.assigned, p)
				m.revoked++
			}
		}),
	}
	m.client = newKgo(t, addr, append(base, options...)...)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fetches := m.client.PollFetches(ctx)
			m.mu.Lock()
			fetches.EachRecord(func(r *kgo.Record) { m.values[string(r.Value)]++ })
			m.mu.Unlock()
		}
	}()
	t.Cleanup(m.close)
	return m
}

// close stops polling and closes the client (which commits and, unless
// static, leaves the group).
func (m *groupMember) close() {
	m.cancel()
	<-m.done
	m.client.Close()
}

func (m *groupMember) snapshot() (values map[string]int, assigned int, revoked int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	values = make(map[string]int, len(m.values))
	for v, n := range m.values {
		values[v] = n
	}
	return values, len(m.assigned), m.revoked
}

// produceValues writes values prefix0..prefix(n-1) with keys spread over
// the topic's partitions.
func produceValues(t *testing.T, addr, topic, prefix string, from, n int) {
	t.Helper()
	// Uncompressed: kafkajs, one of the consumers of these records, reads no
	// snappy without a plug-in, and franz-go picks snappy whenever it shrinks
	// a batch, which depends on how records happen to be batched.
	client := newKgo(t, addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
	var records []*kgo.Record
	for i := from; i < from+n; i++ {
		records = append(records, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%s%d", prefix, i)})
	}
	produceSync(t, client, records...)
}

// waitGroupStable waits until DescribeGroups shows the group Stable with
// members members.
func waitGroupStable(t *testing.T, addr, group string, members int) {
	t.Helper()
	admin := newAdmin(t, addr)
	deadline := time.Now().Add(groupWaitMax)
	var last kadm.DescribedGroup
	for time.Now().Before(deadline) {
		described, err := admin.DescribeGroups(testContext(t), group)
		if err == nil {
			last = described[group]
			if last.State == "Stable" && len(last.Members) == members {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s not Stable with %d members within %s; last: state %q, %d members", group, members, groupWaitMax, last.State, len(last.Members))
}

// waitConsumed waits until the members together consumed every value in
// want, and fails if any was consumed twice or anything else arrived.
func waitConsumed(t *testing.T, want map[string]bool, members ...*groupMember) {
	t.Helper()
	deadline := time.Now().Add(groupWaitMax)
	for {
		got := map[string]int{}
		for _, m := range members {
			values, _, _ := m.snapshot()
			for v, n := range values {
				got[v] += n
			}
		}
		complete := true
		for v := range want {
			if got[v] == 0 {
				complete = false
			}
		}
		if complete {
			for v, n := range got {
				if !want[v] {
					t.Fatalf("consumed %q, which was not expected (already committed, or never produced)", v)
				}
				if n != 1 {
					t.Fatalf("consumed %q %d times", v, n)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d values within %s", len(got), len(want), groupWaitMax)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func valueSet(prefix string, from, n int) map[string]bool {
	out := map[string]bool{}
	for i := from; i < from+n; i++ {
		out[fmt.Sprintf("%s%d", prefix, i)] = true
	}
	return out
}

// TestGroupResumesAfterBrokerCrash proves committed offsets are durable:
// franz-go members commit, the broker is killed with SIGKILL and
// restarted, new members of the same group read exactly what was produced
// after the commit — nothing lost, nothing committed read again.
func TestGroupResumesAfterBrokerCrash(t *testing.T) {
	server := startCairn(t, "")
	const topic, group = "resume", "resume-group"
	createTopic(t, server.kafkaAddr, topic, 3, nil)
	produceValues(t, server.kafkaAddr, topic, "a", 0, 90)
	first := []*groupMember{
		startGroupMember(t, server.kafkaAddr, group, topic, kgo.DisableAutoCommit()),
		startGroupMember(t, server.kafkaAddr, group, topic, kgo.DisableAutoCommit()),
	}
	waitConsumed(t, valueSet("a", 0, 90), first...)
	for _, m := range first {
		if err := m.client.CommitUncommittedOffsets(testContext(t)); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	server.Kill()
	server.Restart()
	for _, m := range first { // consumers restart too
		m.close()
	}
	produceValues(t, server.kafkaAddr, topic, "a", 90, 30)
	second := []*groupMember{
		startGroupMember(t, server.kafkaAddr, group, topic),
		startGroupMember(t, server.kafkaAddr, group, topic),
	}
	waitConsumed(t, valueSet("a", 90, 30), second...)
	time.Sleep(500 * time.Millisecond) // a re-read of committed records would show up here
	waitConsumed(t, valueSet("a", 90, 30), second...)
}

// TestStaticMemberRestartDoesNotRebalance proves KIP-345 static membership:
// a franz-go member with an instance id restarting within its session
// timeout gets its partitions back without a rebalance (the broker's
// rebalance counter does not move) and consumes new records.
func TestStaticMemberRestartDoesNotRebalance(t *testing.T) {
	server := startCairn(t, "")
	const topic, group = "static", "static-group"
	createTopic(t, server.kafkaAddr, topic, 4, nil)
	balancer := kgo.Balancers(kgo.RangeBalancer())
	leader := startGroupMember(t, server.kafkaAddr, group, topic, kgo.InstanceID("s1"), balancer)
	waitGroupStable(t, server.kafkaAddr, group, 1)
	follower := startGroupMember(t, server.kafkaAddr, group, topic, kgo.InstanceID("s2"), balancer)
	waitGroupStable(t, server.kafkaAddr, group, 2)
	produceValues(t, server.kafkaAddr, topic, "s", 0, 40)
	waitConsumed(t, valueSet("s", 0, 40), leader, follower)
	before := rebalanceCount(t, server)
	_, _, revokedBefore := leader.snapshot()

	follower.close() // static: no LeaveGroup
	restarted := startGroupMember(t, server.kafkaAddr, group, topic, kgo.InstanceID("s2"), balancer)
	produceValues(t, server.kafkaAddr, topic, "s", 40, 40)
	deadline := time.Now().Add(groupWaitMax)
	for {
		if _, assigned, _ := restarted.snapshot(); assigned == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted static member was not given its partitions back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitGroupStable(t, server.kafkaAddr, group, 2)
	if after := rebalanceCount(t, server); after != before {
		t.Fatalf("rebalances went from %d to %d across a static member restart", before, after)
	}
	if _, _, revoked := leader.snapshot(); revoked != revokedBefore {
		t.Fatalf("the other member had %d partitions revoked", revoked-revokedBefore)
	}
}

var rebalancesLine = regexp.MustCompile(`(?m)^cairn_group_rebalances_total (\d+)`)

func rebalanceCount(t *testing.T, server *cairnServer) int {
	t.Helper()
	status, body, err := httpGet("http://" + server.httpAddr + "/metrics")
	if err != nil || status != 200 {
		t.Fatalf("/metrics: %d %v", status, err)
	}
	m := rebalancesLine.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no cairn_group_rebalances_total")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestCooperativeStickyMovesOnlyWhatMust proves incremental rebalancing:
// two franz-go members with the cooperative-sticky balancer hold three of
// six partitions each; when a third joins, each of the first two gives up
// exactly one partition and keeps consuming the rest. Lag metrics appear for
// the group's partitions.
func TestCooperativeStickyMovesOnlyWhatMust(t *testing.T) {
	server := startCairn(t, "")
	const topic, group = "coop", "coop-group"
	createTopic(t, server.kafkaAddr, topic, 6, nil)
	balancer := kgo.Balancers(kgo.CooperativeStickyBalancer())
	a := startGroupMember(t, server.kafkaAddr, group, topic, balancer)
	b := startGroupMember(t, server.kafkaAddr, group, topic, balancer)
	waitGroupStable(t, server.kafkaAddr, group, 2)
	produceValues(t, server.kafkaAddr, topic, "c", 0, 60)
	waitConsumed(t, valueSet("c", 0, 60), a, b)
	for _, m := range []*groupMember{a, b} {
		if _, assigned, _ := m.snapshot(); assigned != 3 {
			t.Fatalf("before the third member: a member holds %d partitions, want 3", assigned)
		}
	}
	c := startGroupMember(t, server.kafkaAddr, group, topic, balancer)
	deadline := time.Now().Add(groupWaitMax)
	for {
		_, ca, _ := c.snapshot()
		_, aa, ar := a.snapshot()
		_, ba, br := b.snapshot()
		if ca == 2 && aa == 2 && ba == 2 {
			if ar != 1 || br != 1 {
				t.Fatalf("revoked %d and %d partitions from the first members, want 1 each", ar, br)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("assignments did not settle at 2/2/2: %d/%d/%d", aa, ba, ca)
		}
		time.Sleep(50 * time.Millisecond)
	}
	produceValues(t, server.kafkaAddr, topic, "c", 60, 60)
	waitConsumed(t, valueSet("c", 0, 120), a, b, c)
	if err := a.client.CommitUncommittedOffsets(testContext(t)); err != nil {
		t.Fatal(err)
	}
	_, body, _ := httpGet("http://" + server.httpAddr + "/metrics")
	if !regexp.MustCompile(`cairn_group_lag_records\{group="coop-group",partition="\d",topic="coop"\} 0`).MatchString(body) {
		t.Fatalf("/metrics lacks a zero lag for coop-group:\n%s", grepLines(body, "cairn_group"))
	}
}
