package kafka

// DeleteTopics v0-v6. Topics are named (v0-v5 in TopicNames, v6 in Topics)
// or, from v6, given by topic id with a null name. The data is deleted before
// the response is sent, so TimeoutMillis is not waited on. Unknown names
// answer UNKNOWN_TOPIC_OR_PARTITION and unknown ids UNKNOWN_TOPIC_ID; an entry
// with both a name and an id, or a name or id given twice in one request, is
// refused with INVALID_REQUEST, as Kafka does. The v6 response carries both
// the name and the id of each deleted topic.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DeleteTopics.Int16(), 0, 6, handleDeleteTopics) }

func handleDeleteTopics(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	entries := req.Topics
	if req.Version < 6 {
		entries = make([]kmsg.DeleteTopicsRequestTopic, len(req.TopicNames))
		for i := range req.TopicNames {
			entries[i] = kmsg.NewDeleteTopicsRequestTopic()
			entries[i].Topic = &req.TopicNames[i]
		}
	}
	var names []string
	var ids []string
	for _, e := range entries {
		if e.Topic != nil {
			names = append(names, *e.Topic)
		} else {
			ids = append(ids, string(e.TopicID[:]))
		}
	}
	dupNames, dupIDs := duplicates(names), duplicates(ids)
	for _, e := range entries {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = e.Topic, e.TopicID
		var err error
		switch {
		case e.Topic != nil && e.TopicID != [16]byte{}:
			err = refuse(kerr.InvalidRequest, "topic %q is named and given by id; give one or the other", *e.Topic)
		case e.Topic != nil && dupNames[*e.Topic]:
			err = refuse(kerr.InvalidRequest, "topic %q appears more than once in the request", *e.Topic)
		case e.Topic == nil && dupIDs[string(e.TopicID[:])]:
			err = refuse(kerr.InvalidRequest, "topic id %x appears more than once in the request", e.TopicID)
		default:
			err = s.deleteTopic(c, &st)
		}
		st.ErrorCode = errorCode(err)
		st.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// deleteTopic deletes the topic st names (or identifies) and completes st
// with the name and id of the topic deleted.
func (s *Server) deleteTopic(c *conn, st *kmsg.DeleteTopicsResponseTopic) error {
	if st.Topic == nil {
		t, ok := s.cluster.TopicByID(st.TopicID)
		if !ok {
			return refuse(kerr.UnknownTopicID, "no topic has id %x", st.TopicID)
		}
		name := t.Name
		st.Topic = &name
	} else if t, ok := s.cluster.Topic(*st.Topic); ok {
		st.TopicID = t.ID
	}
	if !c.allowedTopic(acl.OpDelete, *st.Topic) {
		return kerr.TopicAuthorizationFailed
	}
	return s.cluster.DeleteTopic(*st.Topic)
}
