package kafka

import (
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
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
