package main

import (
	"context"
	"regexp"
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

// storageErrorOnPartitionZero makes ListOffsets answer KAFKA_STORAGE_ERROR
// for partition 0, as a broker does for a partition it cannot serve, and
// offset 0 for the others.
func storageErrorOnPartitionZero(cluster *kfake.Cluster) {
	cluster.ControlKey(int16(kmsg.ListOffsets), func(request kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		req := request.(*kmsg.ListOffsetsRequest)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, topic := range req.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = topic.Topic
			for _, partition := range topic.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition = partition.Partition
				rp.Offset, rp.Timestamp, rp.LeaderEpoch = 0, -1, -1
				if partition.Partition == 0 {
					rp.ErrorCode, rp.Offset = kerr.KafkaStorageError.Code, -1
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

// TestTopicDescribeShowsOfflinePartitions: a partition the broker cannot
// serve is shown as OFFLINE with the broker's error; the others as usual.
func TestTopicDescribeShowsOfflinePartitions(t *testing.T) {
	cluster, brokers := startCluster(t, kfake.SeedTopics(2, "damaged"))
	storageErrorOnPartitionZero(cluster)
	described := mustCairn(t, "topic", "describe", "damaged", "--brokers", brokers).stdout
	if !regexp.MustCompile(`(?m)^0\s+-?\d+\s+-?\d+\s+\S+\s+\S+\s+-\s+-\s+OFFLINE: KAFKA_STORAGE_ERROR`).MatchString(described) {
		t.Errorf("partition 0 not shown offline:\n%s", described)
	}
	if !regexp.MustCompile(`(?m)^1\s+0\s+\d+\s+0\s+0\s+0\s+0$`).MatchString(described) {
		t.Errorf("partition 1 not shown with its offsets:\n%s", described)
	}
	if !strings.Contains(described, "1 of 2 partitions offline") {
		t.Errorf("no summary of offline partitions:\n%s", described)
	}
}
