package kafka

// OffsetCommit v0-v9. Committed offsets are records in __consumer_offsets;
// the response is sent only once they are durable. A commit by a member
// must name the group's current generation; generation -1 with no member
// commits for a client that manages partitions itself (an empty group).
// Deviations from Kafka: the retention time of v2-v4 is ignored (offsets
// follow the broker's offsets retention, as in Kafka 2.1+), and v0's
// ZooKeeper storage does not exist: v0 commits are kept like the rest.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.OffsetCommit.Int16(), 0, 9, handleOffsetCommit) }

func handleOffsetCommit(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	offsets := map[groups.TopicPartition]groups.OffsetCommit{}
	groupAllowed := c.allowedGroup(acl.OpRead, req.Group)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		topicAllowed := groupAllowed && c.allowedTopic(acl.OpRead, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			if !groupAllowed {
				sp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			} else if !topicAllowed {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if !s.committable(rt.Topic, rp.Partition) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				oc := groups.OffsetCommit{Offset: rp.Offset, LeaderEpoch: -1}
				if req.Version >= 6 {
					oc.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					oc.Metadata = *rp.Metadata
				}
				offsets[groups.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}] = oc
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	generation := req.Generation
	if req.Version == 0 {
		generation = -1
	}
	cr := groups.CommitRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID, Generation: generation}
	return reply{wait: func() kmsg.Response {
		var perPartition map[groups.TopicPartition]error
		var err error
		if len(offsets) > 0 {
			perPartition, err = s.groups.CommitOffsets(c.ctx, cr, offsets)
		}
		for ti := range resp.Topics {
			st := &resp.Topics[ti]
			for pi := range st.Partitions {
				sp := &st.Partitions[pi]
				if sp.ErrorCode != 0 {
					continue
				}
				if err != nil {
					sp.ErrorCode = errorCode(err)
				} else {
					sp.ErrorCode = errorCode(perPartition[groups.TopicPartition{Topic: st.Topic, Partition: sp.Partition}])
				}
			}
		}
		return resp
	}}
}
