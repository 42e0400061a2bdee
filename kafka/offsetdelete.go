package kafka

// OffsetDelete v0: deletes committed offsets of a group. Partitions of a
// topic the group's live members subscribe to are refused with
// GROUP_SUBSCRIBED_TO_TOPIC. The response is sent once the tombstones are
// durable; when they cannot be written (nothing is deleted) or synced, the
// top-level error is KAFKA_STORAGE_ERROR, as in deletegroups.go.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.OffsetDelete.Int16(), 0, 0, handleOffsetDelete) }

func handleOffsetDelete(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.OffsetDeleteRequest)
	a := c.access()
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		if !a.allowed(acl.OpDelete, acl.ResourceGroup, req.Group) {
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return resp
		}
		readable := map[string]bool{}
		var tps []groups.TopicPartition
		for _, t := range req.Topics {
			readable[t.Topic] = a.allowed(acl.OpRead, acl.ResourceTopic, t.Topic)
			if !readable[t.Topic] {
				continue
			}
			for _, p := range t.Partitions {
				tps = append(tps, groups.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
		}
		results, err := s.groups.DeleteOffsets(c.ctx, req.Group, tps)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp
		}
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition = p.Partition
				if !readable[t.Topic] {
					rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				} else if !s.committable(t.Topic, p.Partition) {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				} else {
					rp.ErrorCode = errorCode(results[groups.TopicPartition{Topic: t.Topic, Partition: p.Partition}])
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}}
}
