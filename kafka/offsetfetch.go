package kafka

// OffsetFetch v0-v9, several groups per request from v8. Null topics (v2+)
// ask for every committed offset of the group. Answers wait until every
// commit appended for the group is durable, so RequireStable (v7+) holds
// trivially. Partitions without a commit get offset -1. The member id and
// epoch of v9 (for the KIP-848 protocol) are not checked.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/groups"
)

func init() { register(kmsg.OffsetFetch.Int16(), 0, 9, handleOffsetFetch) }

// offsetFetchTopic is one requested topic; nil partitions means all.
type offsetFetchTopic struct {
	topic      string
	partitions []int32
}

func handleOffsetFetch(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.OffsetFetchRequest)
	a := c.access()
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		if req.Version < 8 {
			var topics []offsetFetchTopic
			if req.Topics != nil {
				topics = []offsetFetchTopic{}
			}
			for _, t := range req.Topics {
				topics = append(topics, offsetFetchTopic{t.Topic, t.Partitions})
			}
			fetched, err := s.fetchGroupOffsets(c, a, req.Group, topics)
			resp.ErrorCode = errorCode(err)
			for _, ft := range fetched {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = ft.Topic
				for _, fp := range ft.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = fp.Partition, fp.Offset, fp.LeaderEpoch, fp.Metadata, fp.ErrorCode
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		for _, g := range req.Groups {
			var topics []offsetFetchTopic
			if g.Topics != nil {
				topics = []offsetFetchTopic{}
			}
			for _, t := range g.Topics {
				topics = append(topics, offsetFetchTopic{t.Topic, t.Partitions})
			}
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			fetched, err := s.fetchGroupOffsets(c, a, g.Group, topics)
			rg.ErrorCode = errorCode(err)
			rg.Topics = fetched
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}}
}

// fetchGroupOffsets answers one group in the v8+ shape; older versions copy it.
// Without Describe on the group it is refused; a named topic without
// Describe answers TOPIC_AUTHORIZATION_FAILED per partition, and when all
// topics are asked for, those are left out (as Kafka does).
func (s *Server) fetchGroupOffsets(c *conn, a access, group string, topics []offsetFetchTopic) ([]kmsg.OffsetFetchResponseGroupTopic, error) {
	if !a.allowed(acl.OpDescribe, acl.ResourceGroup, group) {
		return nil, kerr.GroupAuthorizationFailed
	}
	var tps []groups.TopicPartition
	for _, t := range topics {
		for _, p := range t.partitions {
			tps = append(tps, groups.TopicPartition{Topic: t.topic, Partition: p})
		}
	}
	if topics != nil && tps == nil {
		tps = []groups.TopicPartition{}
	}
	committed, err := s.groups.FetchOffsets(c.ctx, group, tps)
	if err != nil {
		return nil, err
	}
	if topics == nil { // every committed offset, grouped by topic
		byTopic := map[string][]int32{}
		for tp := range committed {
			if !a.allowed(acl.OpDescribe, acl.ResourceTopic, tp.Topic) {
				continue
			}
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		for topic, partitions := range byTopic {
			sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
			topics = append(topics, offsetFetchTopic{topic, partitions})
		}
		sort.Slice(topics, func(i, j int) bool { return topics[i].topic < topics[j].topic })
	}
	out := make([]kmsg.OffsetFetchResponseGroupTopic, 0, len(topics))
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = t.topic
		topicAllowed := a.allowed(acl.OpDescribe, acl.ResourceTopic, t.topic)
		for _, p := range t.partitions {
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			empty := ""
			rp.Metadata = &empty
			if !topicAllowed {
				rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			} else if oc, ok := committed[groups.TopicPartition{Topic: t.topic, Partition: p}]; ok {
				metadata := oc.Metadata
				rp.Offset, rp.LeaderEpoch, rp.Metadata = oc.Offset, oc.LeaderEpoch, &metadata
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out, nil
}
