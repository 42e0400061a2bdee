package kafka

// InitProducerId v0-v4, for idempotent producers. Every call without a
// producer id gets a new id (never reused: ids are reserved durably in
// blocks) at epoch 0; a call naming its current id and epoch (v3+, KIP-360)
// gets the same id at the next epoch, which restarts its sequences.
// Deviation: transactional ids are refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as there is no transaction coordinator.

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
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		c.logger.Info("refusing transactional producer: transactions are not supported", "transactional_id", *req.TransactionalID)
		return reply{resp: resp}
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
