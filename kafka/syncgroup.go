package kafka

// SyncGroup v0-v5: the leader hands out assignments; followers wait for
// them (off the read loop). v5 checks the protocol type and name.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.SyncGroup.Int16(), 0, 5, handleSyncGroup) }

func handleSyncGroup(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.SyncGroupRequest)
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	sr := groups.SyncRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID,
		Generation: req.Generation, ProtocolType: req.ProtocolType, Protocol: req.Protocol,
		Assignments: make(map[string][]byte, len(req.GroupAssignment))}
	for _, a := range req.GroupAssignment {
		sr.Assignments[a.MemberID] = a.MemberAssignment
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		res, err := s.groups.Sync(c.ctx, sr)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			resp.ErrorCode = errorCode(err)
			resp.MemberAssignment = []byte{}
			return resp
		}
		protocol, protocolType := res.Protocol, res.ProtocolType
		resp.Protocol, resp.ProtocolType = &protocol, &protocolType
		resp.MemberAssignment = res.Assignment
		return resp
	}}
}
