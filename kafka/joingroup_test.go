package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fastGroups makes rebalances quick enough for tests: no initial delay and
// short sessions allowed.
func fastGroups(c *Config) {
	c.Groups.InitialRebalanceDelayMs = 0
	c.Groups.SessionTimeoutMinMs = 500
}

// groupConsumer is one franz-go group member recording what it consumed.
type groupConsumer struct {
	client *kgo.Client
	mu     sync.Mutex
	seen   map[string]int
	stop   context.CancelFunc
	done   chan struct{}
}

func startGroupConsumer(t *testing.T, ts *testServer, group, topic string, opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	base := []kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(2 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}
	client := ts.client(t, append(base, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	gc := &groupConsumer{client: client, seen: map[string]int{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(gc.done)
		for ctx.Err() == nil {
			fetches := client.PollFetches(ctx)
			gc.mu.Lock()
			fetches.EachRecord(func(r *kgo.Record) { gc.seen[string(r.Value)]++ })
			gc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-gc.done })
	return gc
}

func (gc *groupConsumer) count() int {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	n := 0
	for _, c := range gc.seen {
		n += c
	}
	return n
}

func produceValues(t *testing.T, ts *testServer, topic string, from, count int) {
	t.Helper()
	producer := ts.client(t, kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var records []*kgo.Record
	for i := from; i < from+count; i++ {
		records = append(records, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitTotal waits until the consumers together saw want records.
func waitTotal(t *testing.T, want int, consumers ...*groupConsumer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		total := 0
		for _, c := range consumers {
			total += c.count()
		}
		if total >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers saw %d records, want %d", total, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGroupConsumersSharePartitions proves three franz-go members of one
// group (eager range, then cooperative-sticky) split a topic's partitions:
// each record is consumed once while all live, and after one member leaves
// the others take its partitions and consume what follows.
func TestGroupConsumersSharePartitions(t *testing.T) {
	for _, balancer := range []kgo.GroupBalancer{kgo.RangeBalancer(), kgo.CooperativeStickyBalancer()} {
		t.Run(balancer.ProtocolName(), func(t *testing.T) {
			ts := startServer(t, fastGroups)
			topic, group := "shared", "g-"+balancer.ProtocolName()
			if _, err := ts.cluster.CreateTopic(topic, 6, nil, false); err != nil {
				t.Fatal(err)
			}
			var consumers []*groupConsumer
			for range 3 {
				consumers = append(consumers, startGroupConsumer(t, ts, group, topic, kgo.Balancers(balancer)))
			}
			waitStable(t, ts, group, 3)
			produceValues(t, ts, topic, 0, 300)
			waitTotal(t, 300, consumers...)
			seen := map[string]int{}
			for i, c := range consumers {
				if c.count() == 0 {
					t.Errorf("consumer %d got no records: partitions not shared", i)
				}
				c.mu.Lock()
				for v, n := range c.seen {
					seen[v] += n
				}
				c.mu.Unlock()
			}
			for v, n := range seen {
				if n != 1 {
					t.Fatalf("record %s consumed %d times", v, n)
				}
			}
			consumers[0].stop()
			<-consumers[0].done
			consumers[0].client.Close() // leaves the group
			waitStable(t, ts, group, 2)
			before := consumers[1].count() + consumers[2].count()
			produceValues(t, ts, topic, 300, 120)
			waitTotal(t, before+120, consumers[1], consumers[2])
		})
	}
}

// waitStable waits until the group is Stable with members members.
func waitStable(t *testing.T, ts *testServer, group string, members int) {
	t.Helper()
	admin := kadm.NewClient(ts.client(t))
	deadline := time.Now().Add(20 * time.Second)
	for {
		described, err := admin.DescribeGroups(context.Background(), group)
		if err == nil {
			if d := described[group]; d.State == "Stable" && len(d.Members) == members {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not stable with %d members: %+v %v", group, members, described[group], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJoinGroupMemberIDRequired walks the v4+ join round trip on the wire
// and checks the classic error answers at every version of JoinGroup.
func TestJoinGroupMemberIDRequired(t *testing.T) {
	ts := startServer(t, fastGroups)
	rc := ts.dial(t)
	for version := int16(0); version <= 9; version++ {
		group := fmt.Sprintf("raw-%d", version)
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(version)
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = group, 10000, 10000, "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 1}
		req.Protocols = append(req.Protocols, p)
		resp := rc.roundTrip(req).(*kmsg.JoinGroupResponse)
		if version >= 4 {
			if resp.ErrorCode != kerr.MemberIDRequired.Code || resp.MemberID == "" {
				t.Fatalf("v%d first join: error %d member %q, want MEMBER_ID_REQUIRED with an id", version, resp.ErrorCode, resp.MemberID)
			}
			req.MemberID = resp.MemberID
			resp = rc.roundTrip(req).(*kmsg.JoinGroupResponse)
		}
		if resp.ErrorCode != 0 || resp.Generation != 1 || resp.LeaderID != resp.MemberID || len(resp.Members) != 1 {
			t.Fatalf("v%d join: %+v", version, resp)
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.SetVersion(min(version, 5))
		sync.Group, sync.Generation, sync.MemberID = group, 1, resp.MemberID
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID, a.MemberAssignment = resp.MemberID, []byte("mine")
		sync.GroupAssignment = append(sync.GroupAssignment, a)
		if sresp := rc.roundTrip(sync).(*kmsg.SyncGroupResponse); sresp.ErrorCode != 0 || string(sresp.MemberAssignment) != "mine" {
			t.Fatalf("v%d sync: %+v", version, sresp)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.SetVersion(min(version, 4))
		hb.Group, hb.Generation, hb.MemberID = group, 2, resp.MemberID
		if hresp := rc.roundTrip(hb).(*kmsg.HeartbeatResponse); hresp.ErrorCode != kerr.IllegalGeneration.Code {
			t.Fatalf("v%d heartbeat with a wrong generation: error %d", version, hresp.ErrorCode)
		}
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.SetVersion(min(version, 5))
		leave.Group = group
		if version < 3 {
			leave.MemberID = resp.MemberID
		} else {
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = resp.MemberID
			leave.Members = append(leave.Members, m)
		}
		lresp := rc.roundTrip(leave).(*kmsg.LeaveGroupResponse)
		if lresp.ErrorCode != 0 || (version >= 3 && (len(lresp.Members) != 1 || lresp.Members[0].ErrorCode != 0)) {
			t.Fatalf("v%d leave: %+v", version, lresp)
		}
	}
	bad := kmsg.NewPtrJoinGroupRequest()
	bad.SetVersion(5)
	bad.Group, bad.SessionTimeoutMillis, bad.ProtocolType = "bad", 1, "consumer"
	bad.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if resp := rc.roundTrip(bad).(*kmsg.JoinGroupResponse); resp.ErrorCode != kerr.InvalidSessionTimeout.Code {
		t.Fatalf("session timeout 1 ms: error %d, want INVALID_SESSION_TIMEOUT", resp.ErrorCode)
	}
}

// TestFindCoordinatorAnswersThisNode checks single and batched keys.
func TestFindCoordinatorAnswersThisNode(t *testing.T) {
	ts := startServer(t)
	rc := ts.dial(t)
	for version := int16(0); version <= 5; version++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(version)
		req.CoordinatorKey = "g"
		req.CoordinatorKeys = []string{"g1", "g2"}
		resp := rc.roundTrip(req).(*kmsg.FindCoordinatorResponse)
		if version < 4 {
			if resp.ErrorCode != 0 || resp.NodeID != ts.cluster.NodeID() || fmt.Sprintf("%s:%d", resp.Host, resp.Port) != ts.addr {
				t.Fatalf("v%d: %+v", version, resp)
			}
			continue
		}
		if len(resp.Coordinators) != 2 || resp.Coordinators[1].Key != "g2" || fmt.Sprintf("%s:%d", resp.Coordinators[0].Host, resp.Coordinators[0].Port) != ts.addr {
			t.Fatalf("v%d: %+v", version, resp.Coordinators)
		}
	}
}
