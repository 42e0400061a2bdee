package kafka

// DescribeAcls v0-3: the bindings a filter selects (ANY and MATCH as in
// Kafka), grouped by resource, as this node applied them. v0 filters are
// LITERAL. Needs Describe on the cluster when an authorizer is on.
//
// Deviation from Kafka: served without an authorizer too (Kafka answers
// SECURITY_DISABLED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DescribeACLs.Int16(), 0, 3, handleDescribeACLs) }

func handleDescribeACLs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}
	}
	f := aclFilter(req.Version, int8(req.ResourceType), req.ResourceName, int8(req.ResourcePatternType),
		req.Principal, req.Host, int8(req.Operation), int8(req.PermissionType))
	if err := acl.ValidateFilter(f); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
		return reply{resp: resp}
	}
	for _, b := range s.cluster.ACLs().Bindings(f) {
		n := len(resp.Resources)
		if n == 0 || !sameResource(resp.Resources[n-1], b) {
			rr := kmsg.NewDescribeACLsResponseResource()
			rr.ResourceType, rr.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
			rr.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			resp.Resources = append(resp.Resources, rr)
			n++
		}
		ra := kmsg.NewDescribeACLsResponseResourceACL()
		ra.Principal, ra.Host = b.Principal, b.Host
		ra.Operation, ra.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, ra)
	}
	return reply{resp: resp}
}

func sameResource(rr kmsg.DescribeACLsResponseResource, b acl.Binding) bool {
	return acl.ResourceType(rr.ResourceType) == b.ResourceType && rr.ResourceName == b.ResourceName &&
		acl.PatternType(rr.ResourcePatternType) == b.PatternType
}

// aclFilter reads a DescribeAcls or DeleteAcls filter: null strings match
// everything; v0 has no pattern type and means LITERAL.
func aclFilter(version int16, typ int8, name *string, pattern int8, principal, host *string, op, permission int8) acl.Filter {
	f := acl.Filter{ResourceType: acl.ResourceType(typ), PatternType: acl.PatternType(pattern),
		Operation: acl.Operation(op), Permission: acl.Permission(permission)}
	if version == 0 {
		f.PatternType = acl.PatternLiteral
	}
	if name != nil {
		f.ResourceName = *name
	}
	if principal != nil {
		f.Principal = *principal
	}
	if host != nil {
		f.Host = *host
	}
	return f
}
