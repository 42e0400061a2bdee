package kafka

// JoinGroup v0-v9: the classic group protocol's join phase, answered when
// the rebalance completes (the reply waits off the read loop). v4+ new
// members get MEMBER_ID_REQUIRED first; v5+ static members
// (group.instance.id) rejoin without a rebalance when nothing changed.
// Deviations from Kafka: SkipAssignment (v9) is never set — a static leader
// rejoining triggers a rebalance instead.

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.JoinGroup.Int16(), 0, 9, handleJoinGroup) }

func handleJoinGroup(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.JoinGroupRequest)
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.Default()
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return reply{resp: resp}
	}
	jr := groups.JoinRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID,
		ClientID: c.clientID, ClientHost: clientHost(c), SessionTimeoutMs: req.SessionTimeoutMillis,
		RebalanceTimeoutMs: req.RebalanceTimeoutMillis, ProtocolType: req.ProtocolType,
		RequireKnownMemberID: req.Version >= 4}
	if req.Version == 0 { // v0 has no rebalance timeout: Kafka uses the session timeout
		jr.RebalanceTimeoutMs = req.SessionTimeoutMillis
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, groups.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		res, err := s.groups.Join(c.ctx, jr)
		if err == nil {
			err = res.Err
		}
		resp.MemberID, resp.Generation = res.MemberID, res.Generation
		if err != nil {
			resp.ErrorCode = errorCode(err)
			if res.Generation == 0 {
				resp.Generation = -1
			}
			return resp
		}
		resp.LeaderID = res.LeaderID
		protocol, protocolType := res.Protocol, res.ProtocolType
		resp.Protocol, resp.ProtocolType = &protocol, &protocolType
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ProtocolMetadata = m.MemberID, m.InstanceID, m.Metadata
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}}
}

// clientHost is how Kafka reports a member's address: "/" and the IP.
func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + c.nc.RemoteAddr().String()
	}
	return "/" + host
}
