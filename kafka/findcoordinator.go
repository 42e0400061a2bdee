package kafka

// FindCoordinator v0-v5, batched keys from v4. A group's coordinator is the
// leader of its __consumer_offsets partition, a transactional id's the
// leader of its __transaction_state partition (each topic created on the
// first lookup, as Kafka does), with that node's address;
// COORDINATOR_NOT_AVAILABLE while the partition has no known leader.
// Deviation from Kafka: key types other than group (0) and transaction (1)
// get INVALID_REQUEST.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
)

func init() { register(kmsg.FindCoordinator.Int16(), 0, 5, handleFindCoordinator) }

// coordinatorAnswer is one key's answer, in the shape of both versions.
type coordinatorAnswer struct {
	nodeID  int32
	host    string
	port    int32
	code    int16
	message *string
}

func handleFindCoordinator(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.Version < 4 {
		a := s.findCoordinator(c, req.CoordinatorType, req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode, resp.ErrorMessage = a.nodeID, a.host, a.port, a.code, a.message
		return reply{resp: resp}
	}
	for _, key := range req.CoordinatorKeys {
		a := s.findCoordinator(c, req.CoordinatorType, key)
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		rc.NodeID, rc.Host, rc.Port, rc.ErrorCode, rc.ErrorMessage = a.nodeID, a.host, a.port, a.code, a.message
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return reply{resp: resp}
}

// findCoordinator answers one key for a client of c's listener.
func (s *Server) findCoordinator(c *conn, keyType int8, key string) coordinatorAnswer {
	var b cluster.Broker
	var err error
	switch keyType {
	case 1:
		if !c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, key) {
			return coordinatorAnswer{nodeID: -1, code: kerr.TransactionalIDAuthorizationFailed.Code}
		}
		b, err = s.txn.Locate(key)
	case 0:
		if !c.allowedGroup(acl.OpDescribe, key) {
			return coordinatorAnswer{nodeID: -1, code: kerr.GroupAuthorizationFailed.Code}
		}
		b, err = s.groups.Locate(key)
	default:
		return coordinatorAnswer{nodeID: -1, code: kerr.InvalidRequest.Code}
	}
	if err != nil {
		return coordinatorAnswer{nodeID: -1, code: errorCode(err), message: errorMessage(err)}
	}
	e, ok := s.endpointOf(b, c.listener)
	if !ok {
		msg := fmt.Sprintf("the coordinator, node %d, has no Kafka address clients can reach (%q)", b.NodeID, b.KafkaAddr)
		return coordinatorAnswer{nodeID: -1, code: kerr.CoordinatorNotAvailable.Code, message: &msg}
	}
	return coordinatorAnswer{nodeID: e.node, host: e.host, port: e.port}
}
