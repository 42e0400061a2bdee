package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// storageErrorFetches makes every fetch answer KAFKA_STORAGE_ERROR for every
// partition asked, as a broker does for a partition it cannot read.
func storageErrorFetches(cluster *kfake.Cluster) {
	cluster.ControlKey(int16(kmsg.Fetch), func(request kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := request.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, topic := range req.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = topic.Topic, topic.TopicID
			for _, partition := range topic.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = partition.Partition
				rp.ErrorCode = kerr.KafkaStorageError.Code
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

// TestConsumeFailsOnAnUnreadablePartition: when the broker cannot read a
// partition (KAFKA_STORAGE_ERROR, which a Kafka client retries forever),
// consume --until-end stops with the broker's error instead of waiting.
func TestConsumeFailsOnAnUnreadablePartition(t *testing.T) {
	cluster, brokers := startCluster(t, kfake.SeedTopics(1, "damaged"))
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("damaged"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("unreadable")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	storageErrorFetches(cluster)

	started := time.Now()
	result := cairn(t, "consume", "damaged", "--from", "beginning", "--until-end", "--brokers", brokers)
	if result.err == nil || !strings.Contains(result.err.Error(), "KAFKA_STORAGE_ERROR") {
		t.Fatalf("consume of an unreadable partition after %s: %v, want KAFKA_STORAGE_ERROR", time.Since(started), result.err)
	}
	if result.stdout != "" {
		t.Fatalf("printed %q", result.stdout)
	}
}
