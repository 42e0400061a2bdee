package kafka

// ConsumerGroupDescribe v0-v1: groups running the consumer protocol
// (KIP-848) with every member's current and target assignment. A classic
// group, or an unknown one, answers GROUP_ID_NOT_FOUND. Authorized
// operations are "unknown" (-2147483648): there is no ACL.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.ConsumerGroupDescribe.Int16(), 0, 1, handleConsumerGroupDescribe) }

func handleConsumerGroupDescribe(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ConsumerGroupDescribeRequest)
	a := c.access()
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
		for _, name := range req.Groups {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group, rg.AuthorizedOperations = name, -2147483648
			var d groups.GroupDescription
			err := error(kerr.GroupAuthorizationFailed)
			if a.allowed(acl.OpDescribe, acl.ResourceGroup, name) {
				d, err = s.groups.Describe(c.ctx, name)
			}
			switch {
			case err != nil:
				rg.ErrorCode, rg.ErrorMessage = errorCode(err), errorMessage(err)
			case d.Consumer == nil:
				rg.ErrorCode = kerr.GroupIDNotFound.Code
			default:
				rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = d.State, d.Consumer.Epoch, d.Consumer.AssignmentEpoch, d.Consumer.Assignor
				for _, m := range d.Consumer.Members {
					rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
					rm.MemberID, rm.InstanceID, rm.RackID, rm.MemberEpoch = m.MemberID, m.InstanceID, m.RackID, m.Epoch
					rm.ClientID, rm.ClientHost, rm.SubscribedTopics, rm.SubscribedTopicRegex = m.ClientID, m.ClientHost, m.Topics, m.Regex
					rm.Assignment, rm.TargetAssignment = s.describedAssignment(m.Assigned), s.describedAssignment(m.Target)
					rm.MemberType = 1 // consumer (v1+): classic members never join a consumer group here
					rg.Members = append(rg.Members, rm)
				}
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}}
}

func (s *Server) describedAssignment(a groups.Assignment) kmsg.Assignment {
	out := kmsg.NewAssignment()
	topics := make([]string, 0, len(a))
	for topic := range a {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		tp := kmsg.NewAssignmentTopicPartition()
		tp.Topic, tp.Partitions = topic, a[topic]
		if t, ok := s.cluster.Topic(topic); ok {
			tp.TopicID = t.ID
		}
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}
