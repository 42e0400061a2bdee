package kafka

// ListPartitionReassignments v0. The moves the metadata group records as
// running, on any node: null topics list every one. As in Kafka, Replicas
// is the union of the partition's replicas and its target, Adding the
// target's brokers not among the replicas, Removing the replicas' brokers
// not in the target. A partition named that is not moving is left out; a
// single node has none.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() {
	register(kmsg.ListPartitionReassignments.Int16(), 0, 0, handleListPartitionReassignments)
}

func handleListPartitionReassignments(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = errorMessage(kerr.ClusterAuthorizationFailed)
		return reply{resp: resp}
	}
	asked := map[string][]int32{}
	for _, rt := range req.Topics {
		asked[rt.Topic] = append(asked[rt.Topic], rt.Partitions...)
	}
	var cur *kmsg.ListPartitionReassignmentsResponseTopic
	for _, m := range s.cluster.Reassignments() {
		if req.Topics != nil && !slices.Contains(asked[m.Topic], m.Partition) {
			continue
		}
		if cur == nil || cur.Topic != m.Topic {
			resp.Topics = append(resp.Topics, kmsg.NewListPartitionReassignmentsResponseTopic())
			cur = &resp.Topics[len(resp.Topics)-1]
			cur.Topic = m.Topic
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition = m.Partition
		sp.Replicas = append(slices.Clone(m.Replicas), m.Adding()...)
		sp.AddingReplicas, sp.RemovingReplicas = m.Adding(), m.Removing()
		cur.Partitions = append(cur.Partitions, sp)
	}
	return reply{resp: resp}
}
