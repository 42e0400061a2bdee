package kafka

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// unauthorizedRequests builds, per API key, a request naming the topic
// "orders", the group "g" or the cluster, which a principal without any ACL
// must be refused. The APIs that refuse nothing (ApiVersions) or that
// filter instead of refusing (ListGroups, a Metadata listing every topic)
// are listed apart in filteringAPIs.
var unauthorizedRequests = map[int16]func() kmsg.Request{
	kmsg.Produce.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrProduceRequest()
		r.Acks, r.TimeoutMillis = 1, 1000
		t := kmsg.NewProduceRequestTopic()
		t.Topic = "orders"
		t.Partitions = []kmsg.ProduceRequestTopicPartition{kmsg.NewProduceRequestTopicPartition()}
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.Fetch.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrFetchRequest()
		r.ReplicaID, r.MaxBytes = -1, 1<<20
		t := kmsg.NewFetchRequestTopic()
		t.Topic = "orders"
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return namedFetch{r}
	},
	kmsg.ListOffsets.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrListOffsetsRequest()
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = "orders"
		t.Partitions = append(t.Partitions, kmsg.NewListOffsetsRequestTopicPartition())
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.Metadata.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr("orders")
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.OffsetCommit.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrOffsetCommitRequest()
		r.Group, r.Generation = "g", -1
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic = "orders"
		t.Partitions = append(t.Partitions, kmsg.NewOffsetCommitRequestTopicPartition())
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.OffsetFetch.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrOffsetFetchRequest()
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "g"
		r.Group, r.Groups = "g", append(r.Groups, g)
		return r
	},
	kmsg.FindCoordinator.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.CoordinatorKey, r.CoordinatorKeys = "g", []string{"g"}
		return r
	},
	kmsg.JoinGroup.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrJoinGroupRequest()
		r.Group, r.ProtocolType, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = "g", "consumer", 10000, 10000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		r.Protocols = append(r.Protocols, p)
		return r
	},
	kmsg.Heartbeat.Int16():  func() kmsg.Request { r := kmsg.NewPtrHeartbeatRequest(); r.Group = "g"; return r },
	kmsg.LeaveGroup.Int16(): func() kmsg.Request { r := kmsg.NewPtrLeaveGroupRequest(); r.Group = "g"; return r },
	kmsg.SyncGroup.Int16():  func() kmsg.Request { r := kmsg.NewPtrSyncGroupRequest(); r.Group = "g"; return r },
	kmsg.DescribeGroups.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Groups = []string{"g"}
		return r
	},
	kmsg.CreateTopics.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrCreateTopicsRequest()
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = "created", 1, 1
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.DeleteTopics.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDeleteTopicsRequest()
		t := kmsg.NewDeleteTopicsRequestTopic()
		t.Topic = kmsg.StringPtr("orders")
		r.Topics, r.TopicNames = append(r.Topics, t), []string{"orders"}
		return r
	},
	kmsg.DeleteRecords.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDeleteRecordsRequest()
		t := kmsg.NewDeleteRecordsRequestTopic()
		t.Topic = "orders"
		t.Partitions = append(t.Partitions, kmsg.NewDeleteRecordsRequestTopicPartition())
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.InitProducerID.Int16(): func() kmsg.Request { return kmsg.NewPtrInitProducerIDRequest() },
	kmsg.OffsetForLeaderEpoch.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrOffsetForLeaderEpochRequest()
		r.ReplicaID = -1
		t := kmsg.NewOffsetForLeaderEpochRequestTopic()
		t.Topic = "orders"
		t.Partitions = append(t.Partitions, kmsg.NewOffsetForLeaderEpochRequestTopicPartition())
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.DescribeUserSCRAMCredentials.Int16(): func() kmsg.Request {
		return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	},
	kmsg.AlterUserSCRAMCredentials.Int16(): func() kmsg.Request {
		return alterUserRequest("carol")
	},
	kmsg.DescribeACLs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDescribeACLsRequest()
		r.ResourceType, r.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		r.Operation, r.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		return r
	},
	kmsg.DescribeClientQuotas.Int16(): func() kmsg.Request {
		return kmsg.NewPtrDescribeClientQuotasRequest()
	},
	kmsg.AlterClientQuotas.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrAlterClientQuotasRequest()
		e := kmsg.NewAlterClientQuotasRequestEntry()
		c := kmsg.NewAlterClientQuotasRequestEntryEntity()
		c.Type = "user"
		op := kmsg.NewAlterClientQuotasRequestEntryOp()
		op.Key, op.Value = "producer_byte_rate", 1024
		e.Entity, e.Ops = append(e.Entity, c), append(e.Ops, op)
		r.Entries = append(r.Entries, e)
		return r
	},
	kmsg.CreateACLs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:bob", "*", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
		r.Creations = append(r.Creations, c)
		return r
	},
	kmsg.DeleteACLs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDeleteACLsRequest()
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		r.Filters = append(r.Filters, f)
		return r
	},
	kmsg.DescribeConfigs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
		r.Resources = append(r.Resources, rr)
		return r
	},
	kmsg.AlterConfigs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrAlterConfigsRequest()
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
		r.Resources = append(r.Resources, rr)
		return r
	},
	kmsg.AlterPartitionAssignments.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		r.TimeoutMillis = 1000
		return r
	},
	kmsg.ListPartitionReassignments.Int16(): func() kmsg.Request { return kmsg.NewPtrListPartitionReassignmentsRequest() },
	kmsg.OffsetDelete.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrOffsetDeleteRequest()
		r.Group = "g"
		return r
	},
	kmsg.DeleteGroups.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{"g"}
		return r
	},
	kmsg.ElectLeaders.Int16(): func() kmsg.Request { return kmsg.NewPtrElectLeadersRequest() },
	kmsg.IncrementalAlterConfigs.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
		r.Resources = append(r.Resources, rr)
		return r
	},
	kmsg.CreatePartitions.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrCreatePartitionsRequest()
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic, t.Count = "orders", 2
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.DescribeCluster.Int16():  func() kmsg.Request { return kmsg.NewPtrDescribeClusterRequest() },
	kmsg.UnregisterBroker.Int16(): func() kmsg.Request { r := kmsg.NewPtrUnregisterBrokerRequest(); r.BrokerID = 7; return r },
	kmsg.ConsumerGroupHeartbeat.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		r.Group, r.MemberEpoch, r.RebalanceTimeoutMillis = "g", 0, 10000
		r.SubscribedTopicNames = []string{"orders"}
		return r
	},
	kmsg.ConsumerGroupDescribe.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrConsumerGroupDescribeRequest()
		r.Groups = []string{"g"}
		return r
	},
	// The transactional id "t": both forms filled, the version sent
	// decides which is encoded.
	kmsg.AddPartitionsToTxn.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrAddPartitionsToTxnRequest()
		r.TransactionalID, r.ProducerID = "t", 1
		t := kmsg.NewAddPartitionsToTxnRequestTopic()
		t.Topic, t.Partitions = "orders", []int32{0}
		r.Topics = append(r.Topics, t)
		rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
		rt.TransactionalID, rt.ProducerID = "t", 1
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "orders", []int32{0}
		rt.Topics = append(rt.Topics, tt)
		r.Transactions = append(r.Transactions, rt)
		return r
	},
	kmsg.AddOffsetsToTxn.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrAddOffsetsToTxnRequest()
		r.TransactionalID, r.ProducerID, r.Group = "t", 1, "g"
		return r
	},
	kmsg.EndTxn.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrEndTxnRequest()
		r.TransactionalID, r.ProducerID = "t", 1
		return r
	},
	kmsg.WriteTxnMarkers.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID = 1
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "orders", []int32{0}
		m.Topics = append(m.Topics, mt)
		r.Markers = append(r.Markers, m)
		return r
	},
	kmsg.TxnOffsetCommit.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrTxnOffsetCommitRequest()
		r.TransactionalID, r.Group, r.ProducerID = "t", "g", 1
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic = "orders"
		t.Partitions = append(t.Partitions, kmsg.NewTxnOffsetCommitRequestTopicPartition())
		r.Topics = append(r.Topics, t)
		return r
	},
	kmsg.DescribeTransactions.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDescribeTransactionsRequest()
		r.TransactionalIDs = []string{"t"}
		return r
	},
	kmsg.DescribeProducers.Int16(): func() kmsg.Request {
		r := kmsg.NewPtrDescribeProducersRequest()
		t := kmsg.NewDescribeProducersRequestTopic()
		t.Topic, t.Partitions = "orders", []int32{0}
		r.Topics = append(r.Topics, t)
		return r
	},
}

// filteringAPIs refuse nothing to a principal without ACLs: ApiVersions
// and the SASL exchange need no right, ListGroups lists only the groups it
// may describe (TestListGroupsFilters), ListTransactions those it may
// describe (TestTransactionsAuthorization).
var filteringAPIs = map[int16]bool{kmsg.ApiVersions.Int16(): true, kmsg.ListGroups.Int16(): true,
	kmsg.SASLHandshake.Int16(): true, kmsg.SASLAuthenticate.Int16(): true, kmsg.ListTransactions.Int16(): true}

var authorizationCodes = map[int16]bool{
	kerr.TopicAuthorizationFailed.Code:           true,
	kerr.GroupAuthorizationFailed.Code:           true,
	kerr.ClusterAuthorizationFailed.Code:         true,
	kerr.TransactionalIDAuthorizationFailed.Code: true,
}

// errorCodes collects every ErrorCode field of a response, however deep.
func errorCodes(v reflect.Value, out *[]int16) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			errorCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Name == "ErrorCode" && v.Field(i).Kind() == reflect.Int16 {
				*out = append(*out, int16(v.Field(i).Int()))
				continue
			}
			errorCodes(v.Field(i), out)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			errorCodes(v.Index(i), out)
		}
	}
}

// TestEveryAPIRefusesWithoutACLs sends each registered API, as a principal
// no ACL names, to a server with the authorizer on, and wants every error
// code of the answer to be an authorization failure (and at least one).
// A newly registered API without a request here fails the test.
func TestEveryAPIRefusesWithoutACLs(t *testing.T) {
	ts := authServer(t, false)
	createTopics(t, ts, "orders")
	broker := ts.as(t, "bob").Broker(0)
	for _, api := range SupportedAPIs() {
		if filteringAPIs[api.Key] {
			continue
		}
		build, ok := unauthorizedRequests[api.Key]
		if !ok {
			t.Errorf("%s: no request in unauthorizedRequests to check its authorization with", api.Name)
			continue
		}
		t.Run(api.Name, func(t *testing.T) {
			resp, err := broker.Request(testContext(t), build())
			if err != nil {
				t.Fatal(err)
			}
			var codes []int16
			errorCodes(reflect.ValueOf(resp), &codes)
			refused := false
			for _, code := range codes {
				if authorizationCodes[code] {
					refused = true
				} else if code != 0 {
					t.Errorf("error %v besides the authorization failures", kerr.ErrorForCode(code))
				}
			}
			if !refused {
				t.Fatalf("not refused: error codes %v in %+v", codes, resp)
			}
		})
	}
}

// TestListGroupsFilters: ListGroups lists a group only to a principal
// allowed to describe it (or the cluster).
func TestListGroupsFilters(t *testing.T) {
	ts := authServer(t, false)
	ctx := testContext(t)
	createTopics(t, ts, "orders")
	for _, g := range []string{"g1", "g2"} {
		// A commit for an empty group (generation -1) makes the group.
		commit := unauthorizedRequests[kmsg.OffsetCommit.Int16()]().(*kmsg.OffsetCommitRequest)
		commit.Group = g
		resp, err := ts.as(t, "admin").Broker(0).Request(ctx, commit)
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("commit for %s: %v", g, kerr.ErrorForCode(code))
		}
	}
	grant(t, ts, kadm.NewACLs().Groups("g2").Allow("User:alice").Operations(kadm.OpDescribe))
	listed := func(user string) []string {
		resp, err := ts.as(t, user).Broker(0).Request(ctx, kmsg.NewPtrListGroupsRequest())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range resp.(*kmsg.ListGroupsResponse).Groups {
			names = append(names, g.Group)
		}
		return names
	}
	if got := listed("alice"); len(got) != 1 || got[0] != "g2" {
		t.Fatalf("alice lists %v, want [g2]", got)
	}
	if got := listed("bob"); len(got) != 0 {
		t.Fatalf("bob lists %v, want none", got)
	}
	if got := listed("admin"); len(got) != 2 {
		t.Fatalf("the super user lists %v, want both", got)
	}
}

// namedFetch is a fetch that names its topics (v12 at most): from v13 a
// fetch names them by id, and an id the node does not know is answered
// UNKNOWN_TOPIC_ID before any authorization, as in Kafka.
type namedFetch struct{ *kmsg.FetchRequest }

func (namedFetch) MaxVersion() int16 { return 12 }
