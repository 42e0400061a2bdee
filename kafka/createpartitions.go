package kafka

// CreatePartitions v0-v3. Count is the topic's new total; it must be larger
// than the current count (INVALID_PARTITIONS otherwise). The cluster places
// the new partitions' replicas as it placed the topic's. A manual
// assignment, if given, must list one replica set per new partition, each
// this node alone (INVALID_REPLICA_ASSIGNMENT otherwise), and is accepted
// only where the cluster is this node alone: on a cluster of several nodes
// it answers INVALID_REQUEST (not supported yet), as CreateTopics does. ValidateOnly checks and
// changes nothing. Partitions are created before the response is sent, so
// TimeoutMillis is not waited on. A topic named twice in one request is
// refused with INVALID_REQUEST on each of its entries, as Kafka does.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.CreatePartitions.Int16(), 0, 3, handleCreatePartitions) }

func handleCreatePartitions(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		names[i] = rt.Topic
	}
	dup := duplicates(names)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if dup[rt.Topic] {
			err = refuse(kerr.InvalidRequest, "topic %q appears more than once in the request", rt.Topic)
		} else if !c.allowedTopic(acl.OpAlter, rt.Topic) {
			err = kerr.TopicAuthorizationFailed
		} else {
			err = s.createPartitions(rt, req.ValidateOnly)
		}
		st.ErrorCode = errorCode(err)
		st.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

func (s *Server) createPartitions(rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	if rt.Assignment != nil {
		t, ok := s.cluster.Topic(rt.Topic)
		if !ok {
			return refuse(kerr.UnknownTopicOrPartition, "unknown topic %q", rt.Topic)
		}
		added := int(rt.Count) - len(t.Partitions)
		if added > 0 && len(rt.Assignment) != added {
			return refuse(kerr.InvalidReplicaAssignment,
				"topic %q grows by %d partitions but the assignment lists %d", rt.Topic, added, len(rt.Assignment))
		}
		for _, a := range rt.Assignment {
			if err := s.checkReplicas(a.Replicas); err != nil {
				return err
			}
		}
	}
	return s.cluster.CreatePartitions(rt.Topic, rt.Count, validateOnly)
}
