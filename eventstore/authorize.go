package eventstore

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
)

// With Config.Authorizer set, each call checks the caller's rights on the
// topic against the cluster's ACLs, as a Kafka client's produce or fetch of
// the same records would be checked:
//
//   - Append: Write (and, when it creates the topic, Create on the cluster
//     or the topic, as Metadata's auto-creation);
//   - ReadStream, ReadTopic, Subscribe: Read;
//   - GetStreamMetadata: Describe (implied by Read and Write);
//   - SetStreamMetadata: Alter, since metadata changes how long a stream's
//     events live (max count, max age, truncation) and so is an
//     administrator's act rather than a writer's;
//   - DeleteStream: Delete.
//
// The principal is the request context's (auth.FromContext: Anonymous until
// something authenticates HTTP callers) and the host the peer's IP address.
// A forwarded call is checked again by the leader with the principal of the
// request it receives.

// authorize refuses with PermissionDenied when the caller may not perform op
// on topic; nil without an authorizer.
func (s *Service) authorize(ctx context.Context, peer connect.Peer, op acl.Operation, topic string) error {
	a := s.cfg.Authorizer
	if a == nil {
		return nil
	}
	who := auth.FromContext(ctx)
	req := acl.Request{Principal: who, Host: acl.HostOf(peer.Addr), Operation: op,
		ResourceType: acl.ResourceTopic, ResourceName: topic}
	if a.Authorize(s.cluster.ACLs(), req) {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		fmt.Errorf("%s is not allowed %s on topic %q: grant it with cairn acl add", who, op, topic))
}

// authorizeCreate refuses with PermissionDenied an append that would create
// topic without Create on the cluster or on the topic.
func (s *Service) authorizeCreate(ctx context.Context, peer connect.Peer, topic string) error {
	a := s.cfg.Authorizer
	if a == nil || !s.cfg.AutoCreateTopics {
		return nil
	}
	if _, exists := s.cluster.Topic(topic); exists {
		return nil
	}
	req := acl.Request{Principal: auth.FromContext(ctx), Host: acl.HostOf(peer.Addr), Operation: acl.OpCreate,
		ResourceType: acl.ResourceCluster, ResourceName: acl.ClusterName}
	if a.Authorize(s.cluster.ACLs(), req) {
		return nil
	}
	return s.authorize(ctx, peer, acl.OpCreate, topic)
}
