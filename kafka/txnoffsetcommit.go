package kafka

// TxnOffsetCommit v0-v5: a transactional producer commits a group's offsets
// within its transaction (consume-transform-produce). The group
// coordinator writes them to the group's __consumer_offsets partition as a
// transactional batch of the producer; they become the group's committed
// offsets only when the transaction's COMMIT marker reaches that partition,
// and are dropped on ABORT. The producer must have added the group to its
// transaction (AddOffsetsToTxn; INVALID_TXN_STATE otherwise, KIP-890).
// From v3 the member id and generation are checked as an OffsetCommit's
// are (KIP-447): a consumer fenced by a rebalance gets ILLEGAL_GENERATION
// or UNKNOWN_MEMBER_ID.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"

	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.TxnOffsetCommit.Int16(), 0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.TxnOffsetCommitRequest)
	// Authorization, as Kafka: Write on the transactional id, Read on the
	// group (each refusing every partition), Read on each topic (refusing
	// its partitions; the others are committed).
	var refused error
	switch {
	case txnIDRefusal(c, req.TransactionalID) != 0:
		refused = kerr.TransactionalIDAuthorizationFailed
	case !c.allowedGroup(acl.OpRead, req.Group):
		refused = kerr.GroupAuthorizationFailed
	}
	unreadable := map[string]bool{}
	for _, rt := range req.Topics {
		if !c.allowedTopic(acl.OpRead, rt.Topic) {
			unreadable[rt.Topic] = true
		}
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		offsets := map[groups.TopicPartition]groups.OffsetCommit{}
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				if unreadable[rt.Topic] {
					continue
				}
				oc := groups.OffsetCommit{Offset: rp.Offset, LeaderEpoch: -1}
				if req.Version >= 2 {
					oc.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					oc.Metadata = *rp.Metadata
				}
				offsets[groups.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}] = oc
			}
		}
		var perPartition map[groups.TopicPartition]error
		err := refused
		if err == nil && len(offsets) > 0 {
			perPartition, err = s.txnCommitOffsets(c, req, offsets)
		}
		for _, rt := range req.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				switch {
				case err != nil:
					sp.ErrorCode = errorCode(err)
				case unreadable[rt.Topic]:
					sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				default:
					sp.ErrorCode = errorCode(perPartition[groups.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}])
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}
}

func (s *Server) txnCommitOffsets(c *conn, req *kmsg.TxnOffsetCommitRequest, offsets map[groups.TopicPartition]groups.OffsetCommit) (map[groups.TopicPartition]error, error) {
	tp, err := s.offsetsPartition(req.Group)
	if err != nil {
		return nil, err
	}
	p, err := s.cluster.Partition(tp.Topic, tp.Partition)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", groups.ErrNotCoordinator, err)
	}
	if err := s.verifyOn(c.ctx, p, req.TransactionalID, req.ProducerID, req.ProducerEpoch, tp); err != nil {
		return nil, err
	}
	cr := groups.CommitRequest{Group: req.Group, Generation: -1}
	if req.Version >= 3 {
		cr.MemberID, cr.InstanceID, cr.Generation = req.MemberID, req.InstanceID, req.Generation
	}
	return s.groups.TxnCommitOffsets(c.ctx, cr, req.ProducerID, req.ProducerEpoch, offsets)
}
