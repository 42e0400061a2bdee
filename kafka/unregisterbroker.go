package kafka

// UnregisterBroker v0: removes a node from the cluster (`cairn cluster
// remove-node`). Unlike Kafka, which only forgets a fenced broker, this
// drains the node: it becomes DRAINING, every partition with a replica
// there starts moving to the least-loaded other active broker, and once
// none is left it becomes REMOVED and leaves the metadata group's voters.
// The answer comes once the moves are recorded; the client follows the
// rest with ListPartitionReassignments and Metadata (the broker is listed
// until REMOVED). An unknown or removed node answers
// BROKER_ID_NOT_REGISTERED; too few other brokers for a partition's
// replicas INVALID_REPLICATION_FACTOR; a partition of the node moving
// already REASSIGNMENT_IN_PROGRESS; a single node INVALID_REQUEST.
// Asking again while the drain runs succeeds and starts nothing.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
)

func init() { register(kmsg.UnregisterBroker.Int16(), 0, 0, handleUnregisterBroker) }

func handleUnregisterBroker(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.UnregisterBrokerRequest)
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = errorMessage(kerr.ClusterAuthorizationFailed)
		return reply{resp: resp}
	}
	ctx, cancel := env.WithTimeout(context.Background(), s.clock, reassignTimeoutMax)
	defer cancel()
	_, err := s.cluster.RemoveNode(ctx, req.BrokerID)
	if errors.Is(err, cluster.ErrUnknownNode) {
		err = refuse(kerr.BrokerIDNotRegistered, "%v", err)
	}
	resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
	return reply{resp: resp}
}
