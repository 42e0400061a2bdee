package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fastConsumerGroups shortens the consumer protocol's heartbeat and session
// so membership changes show within a test's patience.
func fastConsumerGroups(c *Config) {
	fastGroups(c)
	c.Groups.ConsumerHeartbeatIntervalMs = 200
	c.Groups.ConsumerSessionTimeoutMs = 3000
}

// TestConsumerProtocolGroup proves franz-go opted in to KIP-848
// (ServerSideBalancer) with both server assignors: three members split a
// six-partition topic, each record is consumed once, ConsumerGroupDescribe
// reports the members reconciled at one epoch, and when a member leaves its
// partitions move to the others.
func TestConsumerProtocolGroup(t *testing.T) {
	for _, balancer := range []kgo.GroupBalancer{kgo.StickyBalancer(), kgo.RangeBalancer()} {
		t.Run(balancer.ProtocolName(), func(t *testing.T) {
			ts := startServer(t, fastConsumerGroups)
			topic, group := "next-gen", "kip848-"+balancer.ProtocolName()
			if _, err := ts.cluster.CreateTopic(topic, 6, nil, false); err != nil {
				t.Fatal(err)
			}
			var consumers []*groupConsumer
			for range 3 {
				consumers = append(consumers, startGroupConsumer(t, ts, group, topic, kgo.ServerSideBalancer(), kgo.Balancers(balancer)))
			}
			waitStable(t, ts, group, 3)
			produceValues(t, ts, topic, 0, 300)
			waitTotal(t, 300, consumers...)
			for i, c := range consumers {
				if c.count() == 0 {
					t.Errorf("consumer %d got no records", i)
				}
			}
			described := describeConsumerGroup(t, ts, group)
			if described.ErrorCode != 0 || described.State != "Stable" || len(described.Members) != 3 {
				t.Fatalf("ConsumerGroupDescribe: %+v", described)
			}
			wantAssignor := map[string]string{"sticky": "uniform", "range": "range"}[balancer.ProtocolName()]
			if described.AssignorName != wantAssignor {
				t.Fatalf("assignor %q, want %q", described.AssignorName, wantAssignor)
			}
			owned := 0
			for _, m := range described.Members {
				if m.MemberEpoch != described.Epoch {
					t.Fatalf("member %s at epoch %d, group at %d", m.MemberID, m.MemberEpoch, described.Epoch)
				}
				for _, tp := range m.Assignment.TopicPartitions {
					owned += len(tp.Partitions)
				}
			}
			if owned != 6 {
				t.Fatalf("members own %d partitions, want 6", owned)
			}
			consumers[0].stop()
			<-consumers[0].done
			consumers[0].client.Close()
			waitStable(t, ts, group, 2)
			before := consumers[1].count() + consumers[2].count()
			produceValues(t, ts, topic, 300, 120)
			waitTotal(t, before+120, consumers[1], consumers[2])
			seen := map[string]int{}
			for _, c := range consumers {
				c.mu.Lock()
				for v, n := range c.seen {
					seen[v] += n
				}
				c.mu.Unlock()
			}
			if len(seen) != 420 {
				t.Fatalf("consumed %d distinct records, want 420", len(seen))
			}
		})
	}
}

func describeConsumerGroup(t *testing.T, ts *testServer, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.SetVersion(1)
	req.Groups = []string{group}
	resp := ts.dial(t).roundTrip(req).(*kmsg.ConsumerGroupDescribeResponse)
	return resp.Groups[0]
}

// TestConsumerGroupHeartbeatErrors checks the answers to malformed or
// stale heartbeats on the wire, and that a classic group is not a consumer
// group.
func TestConsumerGroupHeartbeatErrors(t *testing.T) {
	ts := startServer(t, fastConsumerGroups)
	if _, err := ts.cluster.CreateTopic("t", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	heartbeat := func(mutate func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.SetVersion(1)
		req.Group, req.MemberID, req.RebalanceTimeoutMillis = "g", "member-1", 30000
		req.SubscribedTopicNames = []string{"t"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		mutate(req)
		return rc.roundTrip(req).(*kmsg.ConsumerGroupHeartbeatResponse)
	}
	joined := heartbeat(func(*kmsg.ConsumerGroupHeartbeatRequest) {})
	if joined.ErrorCode != 0 || joined.MemberEpoch != 1 || joined.Assignment == nil || len(joined.Assignment.Topics) != 1 ||
		len(joined.Assignment.Topics[0].Partitions) != 2 || joined.HeartbeatIntervalMillis != 200 {
		t.Fatalf("join: %+v", joined)
	}
	for name, c := range map[string]struct {
		mutate func(*kmsg.ConsumerGroupHeartbeatRequest)
		want   *kerr.Error
	}{
		"no subscription on join":    {func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID, r.SubscribedTopicNames = "m2", nil }, kerr.InvalidRequest},
		"unknown assignor":           {func(r *kmsg.ConsumerGroupHeartbeatRequest) { a := "sticky"; r.ServerAssignor = &a }, kerr.UnsupportedAssignor},
		"future epoch":               {func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 9 }, kerr.FencedMemberEpoch},
		"unknown member":             {func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID, r.MemberEpoch = "nobody", 1 }, kerr.UnknownMemberID},
		"bad regular expression":     {func(r *kmsg.ConsumerGroupHeartbeatRequest) { x := "("; r.SubscribedTopicRegex = &x }, kerr.InvalidRegularExpression},
		"epoch below the leave ones": {func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -3 }, kerr.InvalidRequest},
	} {
		if resp := heartbeat(c.mutate); resp.ErrorCode != c.want.Code {
			t.Errorf("%s: error %d, want %s", name, resp.ErrorCode, c.want.Message)
		}
	}

	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(3) // before MEMBER_ID_REQUIRED
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "classic", 5000, 5000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if resp := rc.roundTrip(join).(*kmsg.JoinGroupResponse); resp.ErrorCode != 0 {
		t.Fatalf("classic join: %d", resp.ErrorCode)
	}
	if resp := heartbeat(func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.Group = "classic" }); resp.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("consumer heartbeat to a live classic group: %d, want GROUP_ID_NOT_FOUND", resp.ErrorCode)
	}
	if d := describeConsumerGroup(t, ts, "classic"); d.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("ConsumerGroupDescribe of a classic group: %d", d.ErrorCode)
	}
	left := heartbeat(func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = -1 })
	if left.ErrorCode != 0 || left.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", left)
	}
}
