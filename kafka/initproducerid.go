package kafka

// InitProducerId v0-v4. Without a transactional id (idempotent producers)
// every call without a producer id gets a new id (never reused: ids are
// reserved durably in blocks) at epoch 0; a call naming its current id and
// epoch (v3+, KIP-360) gets the same id at the next epoch, which restarts
// its sequences. With a transactional id the transaction coordinator
// answers (this node must coordinate the id: NOT_COORDINATOR elsewhere):
// a new producer id for a new transactional id, else the next epoch of its
// producer id, which fences the previous producer; an ongoing transaction
// of the previous epoch is aborted first (CONCURRENT_TRANSACTIONS until
// its markers are written, and the client retries); a caller naming an
// id and epoch that are not the current ones gets PRODUCER_FENCED.

import (
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.InitProducerID.Int16(), 0, 4, handleInitProducerID) }

func handleInitProducerID(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID == nil && !c.allowedCluster(acl.OpIdempotentWrite) && !c.allowedAnyTopic(acl.OpWrite) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}
	}
	if req.TransactionalID != nil {
		if code := txnIDRefusal(c, *req.TransactionalID); code != 0 {
			resp.ErrorCode = code
			return reply{resp: resp}
		}
		return reply{wait: func() kmsg.Response {
			pid, epoch := int64(-1), int16(-1)
			if req.Version >= 3 {
				pid, epoch = req.ProducerID, req.ProducerEpoch
			}
			id, ep, err := s.txn.InitProducerID(*req.TransactionalID, req.TransactionTimeoutMillis, pid, epoch)
			if err != nil {
				resp.ErrorCode = errorCode(err)
				c.logger.Debug("init transactional producer", "transactional_id", *req.TransactionalID, "err", err)
				return resp
			}
			resp.ProducerID, resp.ProducerEpoch = id, ep
			return resp
		}}
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return reply{resp: resp}
	}
	id, err := s.cluster.NextProducerID()
	if err != nil {
		resp.ErrorCode = kerr.KafkaStorageError.Code
		c.logger.Error("allocating producer id", "err", err)
		return reply{resp: resp}
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return reply{resp: resp}
}
