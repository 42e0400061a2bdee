package kafka

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFranzConsumesThroughFetchSessions: franz-go opens a fetch session
// and then fetches incrementally; every record arrives once, in order per
// partition, while records are produced between polls.
func TestFranzConsumesThroughFetchSessions(t *testing.T) {
	ts := startServer(t)
	const topic, partitions, rounds, perRound = "sessions", 4, 5, 40
	adminCreate(t, ts, topic, partitions, nil)
	incrementalBefore := fetchCount(t, "incremental")
	errorsBefore := fetchCount(t, "session_error")

	producer := ts.client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	consumer := ts.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := map[int32]int64{}  // the offset expected next, per partition
	acked := map[string]bool{} // values acknowledged and not yet consumed
	got := 0
	for round := range rounds {
		for i := range perRound {
			value := fmt.Sprintf("r%d-%d", round, i)
			if err := producer.ProduceSync(adminContext(t), &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			acked[value] = true
		}
		for want := (round + 1) * perRound; got < want; {
			fs := consumer.PollFetches(adminContext(t))
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset != next[r.Partition] {
					t.Fatalf("partition %d: offset %d, expected %d", r.Partition, r.Offset, next[r.Partition])
				}
				if !acked[string(r.Value)] {
					t.Fatalf("partition %d offset %d: %q was not produced or came twice", r.Partition, r.Offset, r.Value)
				}
				delete(acked, string(r.Value))
				next[r.Partition]++
				got++
			})
		}
	}
	if len(acked) != 0 {
		t.Fatalf("%d records never consumed", len(acked))
	}
	if n := fetchCount(t, "incremental") - incrementalBefore; n < rounds {
		t.Fatalf("%v incremental fetches: franz-go did not use a session", n)
	}
	if n := fetchCount(t, "session_error") - errorsBefore; n != 0 {
		t.Fatalf("%v fetches answered with a session error", n)
	}
}

// fetchCount reads the fetch requests counted of a kind.
func fetchCount(t *testing.T, kind string) float64 {
	t.Helper()
	var m dto.Metric
	if err := fetchRequests.WithLabelValues(kind).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestFetchV13NamesTopicsByID: a v13 fetch names its topics by id, in a
// session too, and an id the node does not know is UNKNOWN_TOPIC_ID.
func TestFetchV13NamesTopicsByID(t *testing.T) {
	ts := startServer(t)
	topic, err := ts.cluster.CreateTopic("ids", 1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.client(t).ProduceSync(adminContext(t), &kgo.Record{Topic: "ids", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	byID := func(id, epoch int32, topicID [16]byte) *kmsg.FetchRequest {
		req := sessionFetch(id, epoch, map[string]map[int32]int64{"": {0: 0}}, nil)
		req.Version = 13
		req.Topics[0].TopicID = topicID
		return req
	}
	rc := ts.dial(t)
	resp := rc.roundTrip(byID(0, 0, topic.ID)).(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].TopicID != topic.ID || resp.SessionID == 0 {
		t.Fatalf("v13 full fetch: %+v", resp)
	}
	if sp := resp.Topics[0].Partitions[0]; sp.ErrorCode != 0 || len(sp.RecordBatches) == 0 || sp.HighWatermark != 1 {
		t.Fatalf("v13 fetch by id: error %d, %d bytes, high watermark %d", sp.ErrorCode, len(sp.RecordBatches), sp.HighWatermark)
	}
	inc := sessionFetch(resp.SessionID, 1, nil, nil)
	inc.Version = 13
	resp = rc.roundTrip(inc).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 || resp.Topics[0].TopicID != topic.ID || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("v13 incremental fetch: %+v", resp)
	}
	unknown := rc.roundTrip(byID(0, -1, [16]byte{9})).(*kmsg.FetchResponse)
	if code := unknown.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown topic id: error %d", code)
	}
}
