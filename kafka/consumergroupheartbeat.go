package kafka

// ConsumerGroupHeartbeat v0-v1: the consumer group protocol of KIP-848,
// with server-side assignment ("uniform", the default, and "range"). v1
// members choose their own member id; v0 members may leave it to the
// coordinator. Deviations from Kafka: a static member leaving temporarily
// (epoch -2) leaves like a dynamic one, so its return rebalances; the
// assignor is the group's last one named rather than the most common; rack
// ids are kept but not used; regular expressions are Go's RE2 syntax, the
// same as Kafka's RE2/J for ordinary patterns.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.ConsumerGroupHeartbeat.Int16(), 0, 1, handleConsumerGroupHeartbeat) }

func handleConsumerGroupHeartbeat(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ConsumerGroupHeartbeatRequest)
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	hr := groups.ConsumerHeartbeatRequest{Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		InstanceID: req.InstanceID, RackID: req.RackID, ClientID: c.clientID, ClientHost: clientHost(c),
		RebalanceTimeoutMs: req.RebalanceTimeoutMillis, SubscribedTopics: req.SubscribedTopicNames,
		SubscribedRegex: req.SubscribedTopicRegex, Assignor: req.ServerAssignor}
	if req.Topics != nil {
		hr.Owned = groups.Assignment{}
		for _, t := range req.Topics {
			if topic, ok := s.cluster.TopicByID(t.TopicID); ok { // a deleted topic is owned by nobody
				hr.Owned[topic.Name] = append(hr.Owned[topic.Name], t.Partitions...)
			}
		}
		for topic := range hr.Owned {
			slices.Sort(hr.Owned[topic])
		}
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		res, err := s.groups.ConsumerHeartbeat(c.ctx, hr)
		if err == nil {
			err = res.Err
		}
		resp.MemberEpoch = res.MemberEpoch
		if res.MemberID != "" {
			id := res.MemberID
			resp.MemberID = &id
		}
		if err != nil {
			resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
			return resp
		}
		resp.HeartbeatIntervalMillis = res.HeartbeatIntervalMs
		if res.Assignment != nil {
			resp.Assignment = &kmsg.ConsumerGroupHeartbeatResponseAssignment{Topics: s.assignmentTopics(res.Assignment)}
		}
		return resp
	}}
}

// assignmentTopics names an assignment's topics by id, as the consumer
// protocol does; a topic deleted meanwhile is left out.
func (s *Server) assignmentTopics(a groups.Assignment) []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic {
	out := []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for topic, partitions := range a {
		t, ok := s.cluster.Topic(topic)
		if !ok {
			continue
		}
		out = append(out, kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{TopicID: t.ID, Partitions: partitions})
	}
	return out
}
