package kafka

// Heartbeat v0-v4: keeps a member's session alive; REBALANCE_IN_PROGRESS
// tells it to rejoin.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.Heartbeat.Int16(), 0, 4, handleHeartbeat) }

func handleHeartbeat(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.HeartbeatRequest)
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	hr := groups.HeartbeatRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID, Generation: req.Generation}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = errorCode(s.groups.Heartbeat(c.ctx, hr))
		return resp
	}}
}
