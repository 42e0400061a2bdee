package kafka

// CreateAcls v0-3. The bindings valid in a request are added to the
// metadata group in one command (so every node authorizes with them once
// applied there); each invalid one answers INVALID_REQUEST with the reason.
// v0 bindings are LITERAL. Needs Alter on the cluster when an authorizer is
// on.
//
// Deviation from Kafka: served without an authorizer too (Kafka answers
// SECURITY_DISABLED), so the ACLs can be in place before --authorizer
// turns the checks on.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.CreateACLs.Int16(), 0, 3, handleCreateACLs) }

func handleCreateACLs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	allowed := c.allowedCluster(acl.OpAlter)
	var valid []acl.Binding
	var at []int // the result of each valid binding
	for i, cr := range req.Creations {
		resp.Results[i] = kmsg.NewCreateACLsResponseResult()
		if !allowed {
			resp.Results[i].ErrorCode = kerr.ClusterAuthorizationFailed.Code
			continue
		}
		b := acl.Binding{ResourceType: acl.ResourceType(cr.ResourceType), ResourceName: cr.ResourceName,
			PatternType: acl.PatternType(cr.ResourcePatternType), Principal: cr.Principal, Host: cr.Host,
			Operation: acl.Operation(cr.Operation), Permission: acl.Permission(cr.PermissionType)}
		if req.Version == 0 {
			b.PatternType = acl.PatternLiteral
		}
		if err := acl.Validate(b); err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
			continue
		}
		valid, at = append(valid, b), append(at, i)
	}
	if err := s.cluster.CreateACLs(valid); err != nil {
		c.logger.Warn("creating ACLs", "err", err)
		for _, i := range at {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errorCode(err), errorMessage(err)
		}
	}
	return reply{resp: resp}
}
