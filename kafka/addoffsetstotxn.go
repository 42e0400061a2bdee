package kafka

// AddOffsetsToTxn v0-v4: a producer adds a group's offsets to its
// transaction; the transaction then includes the group's
// __consumer_offsets partition (created on first use, as for
// FindCoordinator), where TxnOffsetCommit writes and the markers land.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"

	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/txn"
)

func init() { register(kmsg.AddOffsetsToTxn.Int16(), 0, 4, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AddOffsetsToTxnRequest)
	if code := txnIDRefusal(c, req.TransactionalID); code != 0 {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = code
		return reply{resp: resp}
	}
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		tp, err := s.offsetsPartition(req.Group)
		if err == nil {
			err = s.txn.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp})
		}
		resp.ErrorCode = errorCode(err)
		return resp
	}}
}

// offsetsPartition is group's __consumer_offsets partition, the topic
// created if missing.
func (s *Server) offsetsPartition(group string) (txn.TopicPartition, error) {
	if _, err := s.groups.Locate(group); err != nil {
		return txn.TopicPartition{}, err
	}
	t, ok := s.view.Topic(groups.OffsetsTopic)
	if !ok || len(t.Partitions) == 0 {
		return txn.TopicPartition{}, txn.ErrCoordinatorNotAvailable
	}
	return txn.TopicPartition{Topic: groups.OffsetsTopic, Partition: txn.PartitionFor(group, int32(len(t.Partitions)))}, nil
}
