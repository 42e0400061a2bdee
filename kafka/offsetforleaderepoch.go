package kafka

// OffsetForLeaderEpoch v0-v4. Consumers ask it, after a leader epoch change,
// where the epoch they last consumed from ended, to detect truncation
// (KIP-320). Cairn starts a new leader epoch each time a partition opens, so
// a restart is such a change (a replicated partition's epochs are its Raft
// terms). Unknown epochs answer epoch -1, offset -1, as Kafka. Only the
// partition's leader answers (NOT_LEADER_OR_FOLLOWER elsewhere), after
// checking the client's current leader epoch (v2+).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/partition"
)

func init() { register(kmsg.OffsetForLeaderEpoch.Int16(), 0, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	// A follower (replica id ≥ 0, v3+) needs ClusterAction, a client Describe.
	follower := req.Version >= 3 && req.ReplicaID >= 0
	followerAllowed := follower && c.allowedCluster(acl.OpClusterAction)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		allowed := followerAllowed || !follower && c.allowedTopic(acl.OpDescribe, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			requested := int32(-1)
			if req.Version >= 2 {
				requested = rp.CurrentLeaderEpoch
			}
			var p *partition.Partition
			err := error(kerr.TopicAuthorizationFailed)
			if allowed {
				p, _, err = s.leaderPartition(rt.Topic, rp.Partition, requested)
			}
			if err == nil {
				err = p.Err()
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
			} else {
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}
