package kafka

// ListOffsets v0-v7. Timestamps -2 (earliest), -1 (latest: the high
// watermark), -3 (the record with the largest timestamp, v7), -4 (earliest
// local, which is the earliest: there is no tiered storage) and any
// non-negative time (the first record at or after it). v0 answers in the
// old-style offsets array with at most one offset. With read_committed
// (isolation level 1, v2+) latest is the last stable offset. Only
// the partition's leader answers (NOT_LEADER_OR_FOLLOWER elsewhere), after
// checking the client's current leader epoch (v4+, KIP-320).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/partition"
)

func init() { register(kmsg.ListOffsets.Int16(), 0, 7, handleListOffsets) }

const (
	listLatest      = -1
	listEarliest    = -2
	listMaxTime     = -3
	listEarliestLoc = -4
)

func handleListOffsets(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		allowed := c.allowedTopic(acl.OpDescribe, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			offset, ts, epoch, err := int64(0), int64(0), int32(0), error(kerr.TopicAuthorizationFailed)
			if allowed {
				offset, ts, epoch, err = s.listOffset(req.Version, req.IsolationLevel == 1, rt.Topic, rp)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = -1, -1, -1
			} else {
				sp.Offset, sp.Timestamp, sp.LeaderEpoch = offset, ts, epoch
				if req.Version == 0 && offset >= 0 && rp.MaxNumOffsets > 0 {
					sp.OldStyleOffsets = []int64{offset}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

func (s *Server) listOffset(version int16, committed bool, topic string, rp kmsg.ListOffsetsRequestTopicPartition) (int64, int64, int32, error) {
	requested := int32(-1)
	if version >= 4 {
		requested = rp.CurrentLeaderEpoch
	}
	p, _, err := s.leaderPartition(topic, rp.Partition, requested)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := p.Err(); err != nil {
		return 0, 0, 0, err
	}
	offset, ts, err := offsetFor(p, rp.Timestamp, committed)
	return offset, ts, p.LeaderEpoch(), err
}

func offsetFor(p *partition.Partition, timestamp int64, committed bool) (int64, int64, error) {
	switch timestamp {
	case listLatest:
		if committed {
			return p.LastStableOffset(), -1, nil
		}
		return p.HighWatermark(), -1, nil
	case listEarliest, listEarliestLoc:
		return p.LogStartOffset(), -1, nil
	case listMaxTime:
		return p.MaxTimestamp()
	}
	if timestamp < 0 {
		return p.HighWatermark(), -1, nil // -5 (latest tiered) and later special values: the log end
	}
	return p.OffsetForTimestamp(timestamp)
}
