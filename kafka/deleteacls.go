package kafka

// DeleteAcls v0-3: each filter (ANY and MATCH as in Kafka) removes the
// bindings it selects, answered with them. The filters are resolved against
// the bindings this node applied and the matches removed in one metadata
// command. v0 filters are LITERAL. Needs Alter on the cluster when an
// authorizer is on.
//
// Deviation from Kafka: served without an authorizer too (Kafka answers
// SECURITY_DISABLED).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DeleteACLs.Int16(), 0, 3, handleDeleteACLs) }

func handleDeleteACLs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	allowed := c.allowedCluster(acl.OpAlter)
	var filters []acl.Filter
	var at []int // the result of each valid filter
	for i, rf := range req.Filters {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
		if !allowed {
			resp.Results[i].ErrorCode = kerr.ClusterAuthorizationFailed.Code
			continue
		}
		f := aclFilter(req.Version, int8(rf.ResourceType), rf.ResourceName, int8(rf.ResourcePatternType),
			rf.Principal, rf.Host, int8(rf.Operation), int8(rf.PermissionType))
		if err := acl.ValidateFilter(f); err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, errorMessage(err)
			continue
		}
		filters, at = append(filters, f), append(at, i)
	}
	if len(filters) == 0 {
		return reply{resp: resp}
	}
	deleted, err := s.cluster.DeleteACLs(filters)
	for j, i := range at {
		res := &resp.Results[i]
		if err != nil {
			res.ErrorCode, res.ErrorMessage = errorCode(err), errorMessage(err)
			continue
		}
		for _, b := range deleted[j] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
			m.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			m.Principal, m.Host = b.Principal, b.Host
			m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
			res.MatchingACLs = append(res.MatchingACLs, m)
		}
	}
	if err != nil {
		c.logger.Warn("deleting ACLs", "err", err)
	}
	return reply{resp: resp}
}
