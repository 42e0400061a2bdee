package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
)

// Authorization: with Config.Authorizer set, every request is checked as
// Kafka checks it (the table below, one decision per API, which
// docs/kafka-compat.md lists and a test requires of every registered API).
// The checks live at the top of each handler, through conn.allowed; the
// bindings are the cluster's (cluster.ACLs), the principal the
// connection's and the host its remote IP address. Without an authorizer
// everything is allowed.

// authorization says, per API key, what a request needs. An API registered
// without an entry fails TestEveryAPIHasAnAuthorization.
var authorization = map[int16]string{
	kmsg.Produce.Int16():                      "Write on each topic (TOPIC_AUTHORIZATION_FAILED per topic); with a transactional id Write on it (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition)",
	kmsg.Fetch.Int16():                        "Read on each topic; a follower's fetch (replica id ≥ 0) ClusterAction on the cluster",
	kmsg.ListOffsets.Int16():                  "Describe on each topic",
	kmsg.Metadata.Int16():                     "Describe on each topic: listed topics without it are left out, named ones answer TOPIC_AUTHORIZATION_FAILED; auto-creation Create on the cluster or the topic",
	kmsg.OffsetCommit.Int16():                 "Read on the group (GROUP_AUTHORIZATION_FAILED), then Read on each topic",
	kmsg.OffsetFetch.Int16():                  "Describe on the group, then Describe on each topic (all topics: those without it are left out)",
	kmsg.FindCoordinator.Int16():              "Describe on each group (a transactional id: Describe on it)",
	kmsg.JoinGroup.Int16():                    "Read on the group",
	kmsg.Heartbeat.Int16():                    "Read on the group",
	kmsg.LeaveGroup.Int16():                   "Read on the group",
	kmsg.SyncGroup.Int16():                    "Read on the group",
	kmsg.DescribeGroups.Int16():               "Describe on each group",
	kmsg.ListGroups.Int16():                   "Describe on the cluster lists all; otherwise only groups with Describe",
	kmsg.ApiVersions.Int16():                  "none",
	kmsg.CreateTopics.Int16():                 "Create on the cluster or on each topic",
	kmsg.DeleteTopics.Int16():                 "Delete on each topic",
	kmsg.DeleteRecords.Int16():                "Delete on each topic",
	kmsg.InitProducerID.Int16():               "IdempotentWrite on the cluster or Write on any topic; with a transactional id Write on it instead",
	kmsg.OffsetForLeaderEpoch.Int16():         "Describe on each topic (a follower: ClusterAction on the cluster)",
	kmsg.DescribeACLs.Int16():                 "Describe on the cluster",
	kmsg.CreateACLs.Int16():                   "Alter on the cluster",
	kmsg.DeleteACLs.Int16():                   "Alter on the cluster",
	kmsg.DescribeConfigs.Int16():              "DescribeConfigs on each topic, or on the cluster for a broker",
	kmsg.AlterConfigs.Int16():                 "AlterConfigs on each topic, or on the cluster for a broker",
	kmsg.AlterPartitionAssignments.Int16():    "Alter on the cluster",
	kmsg.ListPartitionReassignments.Int16():   "Describe on the cluster",
	kmsg.OffsetDelete.Int16():                 "Delete on the group, then Read on each topic",
	kmsg.DeleteGroups.Int16():                 "Delete on each group",
	kmsg.ElectLeaders.Int16():                 "Alter on the cluster",
	kmsg.IncrementalAlterConfigs.Int16():      "AlterConfigs on each topic, or on the cluster for a broker",
	kmsg.CreatePartitions.Int16():             "Alter on each topic",
	kmsg.DescribeCluster.Int16():              "Describe on the cluster",
	kmsg.UnregisterBroker.Int16():             "Alter on the cluster",
	kmsg.ConsumerGroupHeartbeat.Int16():       "Read on the group",
	kmsg.ConsumerGroupDescribe.Int16():        "Describe on each group",
	kmsg.AddPartitionsToTxn.Int16():           "v0-v3: Write on the transactional id, then Write on each topic (TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED); v4+ (sent by brokers): ClusterAction on the cluster",
	kmsg.AddOffsetsToTxn.Int16():              "Write on the transactional id, then Read on the group",
	kmsg.EndTxn.Int16():                       "Write on the transactional id",
	kmsg.WriteTxnMarkers.Int16():              "ClusterAction on the cluster, or Alter on it (KIP-1037)",
	kmsg.TxnOffsetCommit.Int16():              "Write on the transactional id, Read on the group, then Read on each topic (TOPIC_AUTHORIZATION_FAILED for its partitions)",
	kmsg.DescribeTransactions.Int16():         "Describe on each transactional id",
	kmsg.ListTransactions.Int16():             "lists only the transactional ids with Describe",
	kmsg.DescribeProducers.Int16():            "Read on each topic",
	kmsg.DescribeClientQuotas.Int16():         "DescribeConfigs on the cluster",
	kmsg.AlterClientQuotas.Int16():            "AlterConfigs on the cluster",
	kmsg.SASLHandshake.Int16():                "none: it is authentication itself",
	kmsg.SASLAuthenticate.Int16():             "none: it is authentication itself",
	kmsg.DescribeUserSCRAMCredentials.Int16(): "Describe on the cluster",
	kmsg.AlterUserSCRAMCredentials.Int16():    "Alter on the cluster",
}

// authorizing reports whether ACLs are checked at all.
func (s *Server) authorizing() bool { return s.cfg.Authorizer != nil }

// allowed reports whether the connection's principal may perform op on the
// resource (typ, name): always without an authorizer.
func (c *conn) allowed(op acl.Operation, typ acl.ResourceType, name string) bool {
	return c.access().allowed(op, typ, name)
}

// access is who a request acts as, taken on the handler goroutine: a
// deferred reply checks with it rather than read the connection's
// principal, which a later request (re-authentication) may change.
type access struct {
	s         *Server
	principal auth.Principal
	host      string
}

func (c *conn) access() access {
	a := access{s: c.s, principal: c.principal}
	if c.s.authorizing() {
		a.host = acl.HostOf(c.nc.RemoteAddr().String())
	}
	return a
}

func (a access) allowed(op acl.Operation, typ acl.ResourceType, name string) bool {
	authorizer := a.s.cfg.Authorizer
	if authorizer == nil {
		return true
	}
	return authorizer.Authorize(a.s.cluster.ACLs(), acl.Request{Principal: a.principal, Host: a.host,
		Operation: op, ResourceType: typ, ResourceName: name})
}

// allowedTopic, allowedGroup and allowedCluster are allowed on one type.
func (c *conn) allowedTopic(op acl.Operation, topic string) bool {
	return c.allowed(op, acl.ResourceTopic, topic)
}

func (c *conn) allowedGroup(op acl.Operation, group string) bool {
	return c.allowed(op, acl.ResourceGroup, group)
}

// allowedAnyTopic reports whether op is allowed on some topic (Kafka's
// authorizeByResourceType): an idempotent producer's InitProducerId.
func (c *conn) allowedAnyTopic(op acl.Operation) bool {
	a := c.s.cfg.Authorizer
	if a == nil {
		return true
	}
	return a.AuthorizeAny(c.s.cluster.ACLs(), acl.Request{Principal: c.principal, Host: acl.HostOf(c.nc.RemoteAddr().String()),
		Operation: op, ResourceType: acl.ResourceTopic})
}

func (c *conn) allowedCluster(op acl.Operation) bool {
	return c.allowed(op, acl.ResourceCluster, acl.ClusterName)
}

// txnIDRefusal is TRANSACTIONAL_ID_AUTHORIZATION_FAILED's code when the
// connection may not Write on the transactional id (every request of a
// transactional producer needs it), else 0.
func txnIDRefusal(c *conn, id string) int16 {
	if !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, id) {
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	return 0
}

// configAllowed checks op (DescribeConfigs, AlterConfigs) on a config
// resource: a topic's on the topic, a broker's (or its loggers') on the
// cluster, as Kafka does.
func (c *conn) configAllowed(op acl.Operation, typ kmsg.ConfigResourceType, name string) error {
	if typ == kmsg.ConfigResourceTypeTopic {
		if !c.allowedTopic(op, name) {
			return kerr.TopicAuthorizationFailed
		}
		return nil
	}
	if !c.allowedCluster(op) {
		return kerr.ClusterAuthorizationFailed
	}
	return nil
}
