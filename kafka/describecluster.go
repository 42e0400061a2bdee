package kafka

// DescribeCluster v0-v1. The brokers and controller are Metadata's (the
// nodes clients can reach, and the metadata group's leader, -1 when
// unknown); on a single node, this node alone. v1 asks for an endpoint type: 1 (brokers) is answered; any
// other, including 2 (controllers), answers UNSUPPORTED_ENDPOINT_TYPE, as a
// Kafka broker does. Cluster authorized operations are reported as
// "unknown" (-2147483648): there is no ACL.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DescribeCluster.Int16(), 0, 1, handleDescribeCluster) }

// endpointTypeBrokers is DescribeCluster's endpoint type for brokers (KIP-919).
const endpointTypeBrokers = 1

func handleDescribeCluster(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		resp.ErrorMessage = errorMessage(kerr.ClusterAuthorizationFailed)
		return reply{resp: resp}
	}
	resp.EndpointType = endpointTypeBrokers
	resp.ClusterAuthorizedOperations = -2147483648
	if req.Version >= 1 && req.EndpointType != endpointTypeBrokers {
		err := refuse(kerr.UnsupportedEndpointType,
			"endpoint type %d: this node serves brokers (1) only; it has no separate controllers", req.EndpointType)
		resp.ErrorCode = errorCode(err)
		resp.ErrorMessage = errorMessage(err)
		resp.EndpointType = req.EndpointType
		return reply{resp: resp}
	}
	resp.ClusterID = s.cluster.ID()
	resp.ControllerID = s.view.ControllerID()
	for _, e := range s.endpoints(c.listener) {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = e.node, e.host, e.port, e.rack
		resp.Brokers = append(resp.Brokers, b)
	}
	return reply{resp: resp}
}
