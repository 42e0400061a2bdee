package kafka

// AlterPartitionReassignments v0-v1. Moves a partition's replicas to the
// brokers listed (node ids; the first is preferred leader when the current
// one leaves), or cancels a move with null replicas. Served by any node
// of a cluster: each move is proposed to the metadata group and answered
// once it is recorded; the partition's leader then adds the new replicas
// as learners, waits for them to catch up, changes the voters in one
// joint step and completes the move (ListPartitionReassignments shows it
// until then). Deviations from Kafka: a partition already moving answers
// REASSIGNMENT_IN_PROGRESS (Kafka replaces the target; cancel first), a
// target naming a node twice, a node not active or the current set
// answers INVALID_REPLICA_ASSIGNMENT, a single node answers
// INVALID_REQUEST. A new replica of a partition whose leader's log was
// compacted catches up through the leader's snapshot and a copy of the
// data below it. With v1 and AllowReplicationFactorChange
// false, a target of another size answers INVALID_REPLICATION_FACTOR.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/env"
)

func init() {
	register(kmsg.AlterPartitionAssignments.Int16(), 0, 1, handleAlterPartitionReassignments)
}

// reassignTimeoutMax bounds the wait for one request's proposals whatever
// its TimeoutMillis says.
const reassignTimeoutMax = 60 * time.Second

func handleAlterPartitionReassignments(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = errorMessage(kerr.ClusterAuthorizationFailed)
		return reply{resp: resp}
	}
	timeout := min(time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond, reassignTimeoutMax)
	if timeout <= 0 {
		timeout = reassignTimeoutMax
	}
	ctx, cancel := env.WithTimeout(context.Background(), s.clock, timeout)
	defer cancel()
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			err := s.alterReassignment(ctx, req, rt.Topic, rp)
			sp.ErrorCode, sp.ErrorMessage = errorCode(err), errorMessage(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// alterReassignment starts or cancels one partition's move.
func (s *Server) alterReassignment(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest, topic string, rp kmsg.AlterPartitionAssignmentsRequestTopicPartition) error {
	if rp.Replicas == nil {
		return s.cluster.CancelReassignment(ctx, topic, rp.Partition)
	}
	if req.Version >= 1 && !req.AllowReplicationFactorChange {
		t, ok := s.cluster.Topic(topic)
		if !ok || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
			return refuse(kerr.UnknownTopicOrPartition, "unknown partition %s-%d", topic, rp.Partition)
		}
		if have := len(t.Partitions[rp.Partition].Replicas); have != len(rp.Replicas) {
			return refuse(kerr.InvalidReplicationFactor, "%s-%d has %d replicas, the target %d, and the request forbids a change",
				topic, rp.Partition, have, len(rp.Replicas))
		}
	}
	_, err := s.cluster.Reassign(ctx, topic, rp.Partition, rp.Replicas)
	return err
}
