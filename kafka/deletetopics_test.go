package kafka

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// deleteTopicsRequest names topics in the field the version uses.
func deleteTopicsRequest(version int16, names ...string) *kmsg.DeleteTopicsRequest {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version, req.TimeoutMillis = version, 5000
	for _, n := range names {
		if version < 6 {
			req.TopicNames = append(req.TopicNames, n)
			continue
		}
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestDeleteTopicsVersions proves each served version (lowest, both sides of
// the flexible switch at v4, highest) deletes a named topic, and that v6
// reports its id.
func TestDeleteTopicsVersions(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{0, 3, 4, 6} {
		name := fmt.Sprintf("doomed-v%d", version)
		topic := adminCreate(t, ts, name, 2, nil)
		resp := ts.dial(t).roundTrip(deleteTopicsRequest(version, name)).(*kmsg.DeleteTopicsResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != name {
			t.Fatalf("v%d: response %+v", version, resp.Topics)
		}
		if _, ok := ts.cluster.Topic(name); ok {
			t.Fatalf("v%d: topic still exists", version)
		}
		if version >= 6 && resp.Topics[0].TopicID != topic.ID {
			t.Errorf("v%d: topic id %x, want %x", version, resp.Topics[0].TopicID, topic.ID)
		}
	}
}

// TestDeleteTopicsByID proves v6 deletes by topic id, reporting the name,
// and answers UNKNOWN_TOPIC_ID for an id no topic has.
func TestDeleteTopicsByID(t *testing.T) {
	ts := startServer(t)
	topic := adminCreate(t, ts, "by-id", 1, nil)
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	for _, id := range [][16]byte{topic.ID, {1, 2, 3}} {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.TopicID = id
		req.Topics = append(req.Topics, rt)
	}
	resp := ts.dial(t).roundTrip(req).(*kmsg.DeleteTopicsResponse)
	deleted, unknown := resp.Topics[0], resp.Topics[1]
	if deleted.ErrorCode != 0 || deleted.Topic == nil || *deleted.Topic != "by-id" || deleted.TopicID != topic.ID {
		t.Errorf("delete by id: %s, name %v, id %x", codeOf(deleted.ErrorCode), deleted.Topic, deleted.TopicID)
	}
	if _, ok := ts.cluster.Topic("by-id"); ok {
		t.Error("topic deleted by id still exists")
	}
	if unknown.ErrorCode != kerr.UnknownTopicID.Code || unknown.Topic != nil {
		t.Errorf("unknown id: %s, name %v", codeOf(unknown.ErrorCode), unknown.Topic)
	}
}

// TestDeleteTopicsRefusals proves unknown names, entries with both a name
// and an id, and duplicated names are refused, and that a refused entry
// deletes nothing.
func TestDeleteTopicsRefusals(t *testing.T) {
	ts := startServer(t)
	kept := adminCreate(t, ts, "kept", 1, nil)
	adminCreate(t, ts, "twice", 1, nil)
	req := deleteTopicsRequest(6, "missing", "twice", "twice")
	both := kmsg.NewDeleteTopicsRequestTopic()
	both.Topic, both.TopicID = kmsg.StringPtr("kept"), kept.ID
	req.Topics = append(req.Topics, both)
	resp := ts.dial(t).roundTrip(req).(*kmsg.DeleteTopicsResponse)
	want := []*kerr.Error{kerr.UnknownTopicOrPartition, kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidRequest}
	for i, st := range resp.Topics {
		if st.ErrorCode != want[i].Code || st.ErrorMessage == nil {
			t.Errorf("entry %d: %s (%v), want %s with a message", i, codeOf(st.ErrorCode), st.ErrorMessage, want[i].Message)
		}
	}
	for _, name := range []string{"kept", "twice"} {
		if _, ok := ts.cluster.Topic(name); !ok {
			t.Errorf("refused deletion removed %q", name)
		}
	}
	v0 := ts.dial(t).roundTrip(deleteTopicsRequest(0, "missing")).(*kmsg.DeleteTopicsResponse)
	if v0.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("v0 unknown topic: %s", codeOf(v0.Topics[0].ErrorCode))
	}
}

// TestDeleteTopicsThenRecreateWithKadm proves a deleted topic's name can be
// reused at once, and the new topic has a new id and none of the old records.
func TestDeleteTopicsThenRecreateWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	first, err := adm.CreateTopic(ctx, 1, 1, nil, "reused")
	if err != nil {
		t.Fatal(err)
	}
	adminProduce(t, ts, "reused", 0, 3)

	if _, err := adm.DeleteTopic(ctx, "reused"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopic(ctx, "reused"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("second delete: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	second, err := adm.CreateTopic(ctx, 2, 1, nil, "reused")
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Error("the recreated topic kept the old id")
	}
	ends, err := adm.ListEndOffsets(ctx, "reused")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("partition %d of the recreated topic: end offset %d, err %v; want 0", o.Partition, o.Offset, o.Err)
		}
	})
	if n := len(ends["reused"]); n != 2 {
		t.Errorf("%d partitions listed, want 2", n)
	}
}
