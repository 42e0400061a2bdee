package kafka

// ListGroups v0-v5, with the state filter (v4+) and type filter (v5+):
// "classic" groups and "consumer" groups (KIP-848).

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.ListGroups.Int16(), 0, 5, handleListGroups) }

func handleListGroups(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ListGroupsRequest)
	a := c.access()
	// Describe on the cluster lists every group; otherwise each is listed
	// only with Describe on it, as Kafka does.
	all := a.allowed(acl.OpDescribe, acl.ResourceCluster, acl.ClusterName)
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		listed, err := s.groups.List(c.ctx)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp
		}
		for _, l := range listed {
			if !matchesFilter(req.StatesFilter, l.State) || !matchesFilter(req.TypesFilter, l.Type) ||
				!all && !a.allowed(acl.OpDescribe, acl.ResourceGroup, l.Group) {
				continue
			}
			rg := kmsg.NewListGroupsResponseGroup()
			rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = l.Group, l.ProtocolType, l.State, l.Type
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}}
}

// matchesFilter applies a ListGroups filter: empty matches everything;
// names compare case-insensitively, as Kafka does.
func matchesFilter(filter []string, value string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if strings.EqualFold(f, value) {
			return true
		}
	}
	return false
}
