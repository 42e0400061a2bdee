package kafka

// DeleteRecords v0-v2. Each partition's log start offset advances to the
// given offset (-1: the high watermark) and the response carries the new low
// watermark. An offset above the high watermark, or below -1, answers
// OFFSET_OUT_OF_RANGE. A topic whose cleanup.policy does not include delete
// answers POLICY_VIOLATION, as Kafka does: compaction, not deletion, decides
// what such a log keeps. Only the partition's leader deletes
// (NOT_LEADER_OR_FOLLOWER elsewhere). The start offset moves before the
// response is sent: a replicated partition's leader proposes the move and
// answers once it applied it, waiting at most TimeoutMillis for the whole
// request (REQUEST_TIMED_OUT for the partitions not applied by then, as
// Kafka's purgatory answers); the move may still happen after.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/env"
)

func init() { register(kmsg.DeleteRecords.Int16(), 0, 2, handleDeleteRecords) }

func handleDeleteRecords(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	ctx, cancel := env.WithTimeout(c.ctx, s.clock, max(time.Duration(req.TimeoutMillis)*time.Millisecond, time.Millisecond))
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		policyErr := error(kerr.TopicAuthorizationFailed)
		if c.allowedTopic(acl.OpDelete, rt.Topic) {
			policyErr = s.checkRecordsDeletable(rt.Topic)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			err := policyErr
			if err == nil {
				sp.LowWatermark, err = s.deleteRecords(ctx, rt.Topic, rp)
			}
			sp.ErrorCode = errorCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// checkRecordsDeletable refuses topics whose policy keeps records by key
// only. An unknown topic passes here and is reported per partition.
func (s *Server) checkRecordsDeletable(topic string) error {
	entries, err := s.cluster.DescribeConfigs(topic)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Name == "cleanup.policy" && !slices.Contains(splitList(e.Value), "delete") {
			return refuse(kerr.PolicyViolation, "topic %q has cleanup.policy=%s; records can be deleted only with the delete policy", topic, e.Value)
		}
	}
	return nil
}

func (s *Server) deleteRecords(ctx context.Context, topic string, rp kmsg.DeleteRecordsRequestTopicPartition) (int64, error) {
	p, _, err := s.leaderPartition(topic, rp.Partition, -1)
	if err != nil {
		return -1, err
	}
	return p.DeleteRecordsBefore(ctx, rp.Offset)
}
