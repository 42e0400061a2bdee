package kafka

// ElectLeaders v1-v2, preferred elections only. Each node hands the
// partitions it leads to their preferred leaders (a Raft leadership
// transfer, answered once asked, not once done); a client rebalancing a
// cluster sends the request to every broker, as `cairn cluster
// rebalance-leaders` does, rather than to the controller alone. Null
// topics ask for every partition this node leads and list only those
// it transferred; a named partition led elsewhere answers
// NOT_LEADER_OR_FOLLOWER, one led by its preferred leader
// ELECTION_NOT_NEEDED, one whose preferred leader's node is not active
// PREFERRED_LEADER_NOT_AVAILABLE. Unclean elections (type 1) answer
// INVALID_REQUEST: Raft elects only from a quorum.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
)

func init() { register(kmsg.ElectLeaders.Int16(), 1, 2, handleElectLeaders) }

func handleElectLeaders(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}
	}
	all := req.Topics == nil
	topics := req.Topics
	if all {
		for _, t := range s.cluster.Topics() {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = t.Name
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, p.Index)
			}
			topics = append(topics, rt)
		}
	}
	for _, rt := range topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		for _, index := range rt.Partitions {
			var err error
			if req.ElectionType != 0 {
				err = refuse(kerr.InvalidRequest, "election type %d: only preferred elections (0) are served", req.ElectionType)
			} else {
				err = s.cluster.PreferLeader(rt.Topic, index)
			}
			if all && err != nil && (errors.Is(err, cluster.ErrNotLeader) || errors.Is(err, cluster.ErrElectionNotNeeded)) {
				continue
			}
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = index
			sp.ErrorCode, sp.ErrorMessage = errorCode(err), errorMessage(err)
			st.Partitions = append(st.Partitions, sp)
		}
		if !all || len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	return reply{resp: resp}
}
