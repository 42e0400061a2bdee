package kafka

// DeleteGroups v0-v2. Only an empty group can be deleted (NON_EMPTY_GROUP
// otherwise); its committed offsets go with it, as tombstones in
// __consumer_offsets. Each group is answered once its tombstones are durable.
// When they cannot be written (the group stays) or synced, the group's error
// is KAFKA_STORAGE_ERROR. Kafka says NOT_COORDINATOR there, since its offsets
// partition can move to a healthy broker; a single node has none to offer.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DeleteGroups.Int16(), 0, 2, handleDeleteGroups) }

func handleDeleteGroups(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DeleteGroupsRequest)
	a := c.access()
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, name := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group = name
			if !a.allowed(acl.OpDelete, acl.ResourceGroup, name) {
				rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			} else {
				rg.ErrorCode = errorCode(s.groups.DeleteGroup(c.ctx, name))
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}}
}
