package kafka

// LeaveGroup v0-v5: one member (v0-v2, its error at the top level) or a
// batch of members, static ones by instance id (v3+, an error per member;
// the top level only reports a bad group id or an unavailable coordinator).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.LeaveGroup.Int16(), 0, 5, handleLeaveGroup) }

func handleLeaveGroup(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.LeaveGroupRequest)
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	var leaving []groups.LeaveMember
	if req.Version < 3 {
		leaving = []groups.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			leaving = append(leaving, groups.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID})
		}
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		if req.Group == "" {
			resp.ErrorCode = errorCode(groups.ErrInvalidGroupID)
			return resp
		}
		errs, err := s.groups.Leave(c.ctx, req.Group, leaving)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp
		}
		if req.Version < 3 {
			resp.ErrorCode = errorCode(errs[0])
			return resp
		}
		for i, m := range req.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, errorCode(errs[i])
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}}
}
