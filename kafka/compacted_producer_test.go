package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/batch"
)

// TestFranzReadsAcrossEmptiedProducerBatch: after compaction leaves an
// idempotent producer's last batch empty, franz-go consumes the topic from
// its start to its end (past the empty batch) and the producer goes on
// writing with its next sequence.
func TestFranzReadsAcrossEmptiedProducerBatch(t *testing.T) {
	ts := startServer(t)
	const topic = "compacted"
	created := adminCreate(t, ts, topic, 1, map[string]string{"cleanup.policy": "compact", "segment.bytes": "200"})
	p := created.Partitions[0].Partition
	producer := ts.client(t, kgo.DefaultProduceTopic(topic)) // idempotent by default
	if err := producer.ProduceSync(adminContext(t), &kgo.Record{Key: []byte("a"), Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Another producer overwrites key a and fills segments, so the first
	// producer's only batch is sealed and loses its one record.
	other := ts.client(t, kgo.DefaultProduceTopic(topic))
	for i := 0; i < 20; i++ {
		key := "a"
		if i > 0 {
			key = fmt.Sprintf("z%d", i%3)
		}
		if err := other.ProduceSync(adminContext(t), &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Clean(time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	res, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := batch.ParseHeader(res.Records); err != nil || h.NumRecords != 0 || h.ProducerID < 0 {
		t.Fatalf("first batch after compaction %+v (err %v), want the producer's batch, empty", h, err)
	}

	consumer := ts.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	end := p.HighWatermark()
	var last int64 = -1
	for polls := 0; last < end-1 && polls < 50; polls++ {
		fs := consumer.PollFetches(adminContext(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "a" && string(r.Value) == "first" {
				t.Fatalf("read the compacted record at %d", r.Offset)
			}
			last = r.Offset
		})
	}
	if last != end-1 {
		t.Fatalf("consumed up to offset %d, want %d", last, end-1)
	}
	if err := producer.ProduceSync(adminContext(t), &kgo.Record{Key: []byte("b"), Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatalf("the producer's next batch after compaction: %v", err)
	}
}
