package kafka

// FindCoordinator v0-v5, batched keys from v4. This node coordinates every
// group and every transactional id; transactional ids get an answer too,
// and InitProducerId then refuses transactions. Deviation from Kafka: key
// types other than group (0) and transaction (1) get INVALID_REQUEST.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(kmsg.FindCoordinator.Int16(), 0, 5, handleFindCoordinator) }

func handleFindCoordinator(s *Server, _ *conn, r kmsg.Request) reply {
	req := r.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	var refuse *kerr.Error
	if req.CoordinatorType != 0 && req.CoordinatorType != 1 {
		refuse = kerr.InvalidRequest
	}
	if req.Version < 4 {
		if refuse != nil {
			resp.ErrorCode, resp.NodeID = refuse.Code, -1
			return reply{resp: resp}
		}
		resp.NodeID, resp.Host, resp.Port = s.cluster.NodeID(), s.host, s.port
		return reply{resp: resp}
	}
	for _, key := range req.CoordinatorKeys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		if refuse != nil {
			rc.ErrorCode, rc.NodeID = refuse.Code, -1
		} else {
			rc.NodeID, rc.Host, rc.Port = s.cluster.NodeID(), s.host, s.port
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return reply{resp: resp}
}
