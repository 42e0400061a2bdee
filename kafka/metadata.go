package kafka

// Metadata v0-v12. One broker (this node) leads every partition; replicas and
// ISR are that node alone. Unknown topics are created when the server allows
// auto-creation and the request does (always for v0-v3, which have no flag),
// as Kafka's auto.create.topics.enable does. A partition that is offline
// after a storage failure is reported with LEADER_NOT_AVAILABLE and leader -1.
// Topics whose names start with "__" are internal and never auto-created;
// __consumer_offsets is reported IsInternal. Authorized operations are reported as "unknown" (-2147483648): there is no ACL.

import (
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.Metadata.Int16(), 0, 12, handleMetadata) }

func handleMetadata(s *Server, _ *conn, r kmsg.Request) reply {
	req := r.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = s.cluster.NodeID(), s.host, s.port
	resp.Brokers = append(resp.Brokers, b)
	id := s.cluster.ID()
	resp.ClusterID = &id
	resp.ControllerID = s.cluster.NodeID()
	resp.AuthorizedOperations = -2147483648

	allTopics := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if allTopics {
		for _, t := range s.cluster.Topics() {
			resp.Topics = append(resp.Topics, s.topicMetadata(t))
		}
		return reply{resp: resp}
	}
	autoCreate := s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		resp.Topics = append(resp.Topics, s.requestedTopicMetadata(rt, autoCreate))
	}
	return reply{resp: resp}
}

func (s *Server) requestedTopicMetadata(rt kmsg.MetadataRequestTopic, autoCreate bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.AuthorizedOperations = -2147483648
	var t *cluster.Topic
	var ok bool
	if rt.Topic == nil {
		t, ok = s.cluster.TopicByID(rt.TopicID)
		mt.TopicID = rt.TopicID
		if !ok {
			mt.ErrorCode = kerr.UnknownTopicID.Code
			return mt
		}
		return s.topicMetadata(t)
	}
	name := *rt.Topic
	mt.Topic = &name
	t, ok = s.cluster.Topic(name)
	// Internal topics (such as __consumer_offsets) are created by the broker itself, never by a client's metadata request.
	if !ok && autoCreate && !strings.HasPrefix(name, "__") {
		var err error
		t, err = s.cluster.CreateTopic(name, s.cfg.DefaultPartitions, nil, false)
		if errors.Is(err, cluster.ErrTopicExists) { // created concurrently by another request
			t, ok = s.cluster.Topic(name)
		} else if err != nil {
			// An invalid name is the client's mistake, answered with
			// its code; only a failure of the server is worth a line.
			if !errors.Is(err, cluster.ErrInvalidTopic) {
				s.logger.Warn("auto-creating topic", "topic", name, "err", err)
			}
			mt.ErrorCode = errorCode(err)
			return mt
		} else {
			ok = true
		}
	}
	if !ok {
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return mt
	}
	return s.topicMetadata(t)
}

func (s *Server) topicMetadata(t *cluster.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Name == groups.OffsetsTopic
	mt.AuthorizedOperations = -2147483648
	node := s.cluster.NodeID()
	for _, slot := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = slot.Index
		mp.Replicas = []int32{node}
		if slot.Partition == nil || slot.Partition.Err() != nil {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
			mp.LeaderEpoch = -1
			mp.ISR = []int32{}
			mp.OfflineReplicas = []int32{node}
		} else {
			mp.Leader = node
			mp.LeaderEpoch = slot.Partition.LeaderEpoch()
			mp.ISR = []int32{node}
			mp.OfflineReplicas = []int32{}
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
