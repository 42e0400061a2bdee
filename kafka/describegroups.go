package kafka

// DescribeGroups v0-v5. An unknown group is reported in state Dead with no
// error, as Kafka does before v6. Authorized operations are "unknown"
// (-2147483648): there is no ACL.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DescribeGroups.Int16(), 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeGroupsRequest)
	a := c.access()
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, name := range req.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = name
			rg.AuthorizedOperations = -2147483648
			if !a.allowed(acl.OpDescribe, acl.ResourceGroup, name) {
				rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			d, err := s.groups.Describe(c.ctx, name)
			if err != nil {
				rg.ErrorCode = errorCode(err)
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			rg.State, rg.ProtocolType, rg.Protocol = d.State, d.ProtocolType, d.Protocol
			for _, m := range d.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
				rm.ProtocolMetadata, rm.MemberAssignment = orEmpty(m.Metadata), orEmpty(m.Assignment)
				rg.Members = append(rg.Members, rm)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}}
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
