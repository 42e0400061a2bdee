package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestSaramaRoundTrips proves IBM/sarama's SyncProducer writes records with
// every codec that sarama's partition consumer (no group) reads back intact,
// at the offsets the producer reported; once with sarama's default protocol
// version and once declaring a recent Kafka, so both request-version ranges
// sarama picks are served.
func TestSaramaRoundTrips(t *testing.T) {
	server := startCairn(t, "")
	versions := []struct {
		name    string
		version *sarama.KafkaVersion // nil keeps sarama's default
	}{
		{"default", nil},
		{"3.6", &sarama.V3_6_0_0},
	}
	codecs := []struct {
		name  string
		codec sarama.CompressionCodec
	}{
		{"none", sarama.CompressionNone},
		{"gzip", sarama.CompressionGZIP},
		{"snappy", sarama.CompressionSnappy},
		{"lz4", sarama.CompressionLZ4},
		{"zstd", sarama.CompressionZSTD},
	}
	for _, version := range versions {
		for _, codec := range codecs {
			t.Run(version.name+"/"+codec.name, func(t *testing.T) {
				config := saramaConfig(version.version)
				config.Producer.Compression = codec.codec
				topic := fmt.Sprintf("sarama-%s-%s", version.name, codec.name)
				createTopic(t, server.kafkaAddr, topic, 1, nil)
				sent := saramaProduce(t, server.kafkaAddr, config, topic, 50)
				saramaConsume(t, server.kafkaAddr, config, topic, sent)
			})
		}
	}
}

func saramaConfig(version *sarama.KafkaVersion) *sarama.Config {
	config := sarama.NewConfig()
	if version != nil {
		config.Version = *version
	}
	config.ClientID = "cairn-integration"
	config.Producer.Return.Successes = true
	config.Producer.RequiredAcks = sarama.WaitForAll
	config.Producer.Timeout = requestWaitMax
	config.Producer.Retry.Max = 3
	config.Metadata.Retry.Max = 3
	config.Net.DialTimeout = 5 * time.Second
	config.Consumer.Return.Errors = true
	config.Consumer.MaxWaitTime = 200 * time.Millisecond
	return config
}

// saramaProduce sends n records one by one through a SyncProducer and
// returns them with the offsets sarama reported.
func saramaProduce(t *testing.T, addr string, config *sarama.Config, topic string, n int) []*sarama.ProducerMessage {
	t.Helper()
	producer, err := sarama.NewSyncProducer([]string{addr}, config)
	if err != nil {
		t.Fatalf("create sarama producer (version %s): %v", config.Version, err)
	}
	defer func() {
		if err := producer.Close(); err != nil {
			t.Errorf("close sarama producer: %v", err)
		}
	}()
	var batch []*sarama.ProducerMessage
	for i := range n {
		message := &sarama.ProducerMessage{
			Topic: topic,
			Value: sarama.ByteEncoder(fmt.Appendf(nil, "sarama value %d %s", i, bytes.Repeat([]byte("z"), i))),
		}
		if i%2 == 0 {
			message.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", i))
			message.Headers = []sarama.RecordHeader{{Key: []byte("n"), Value: fmt.Appendf(nil, "%d", i)}}
		}
		batch = append(batch, message)
	}
	// Half one at a time, half as one SendMessages call, which sarama packs
	// into a single multi-record batch.
	for _, message := range batch[:n/2] {
		if _, _, err := producer.SendMessage(message); err != nil {
			t.Fatalf("send message to %s: %v", topic, err)
		}
	}
	if err := producer.SendMessages(batch[n/2:]); err != nil {
		t.Fatalf("send %d messages to %s: %v", n-n/2, topic, err)
	}
	return batch
}

// saramaConsume reads partition 0 from the oldest offset with a partition
// consumer and compares what comes back with what was sent.
func saramaConsume(t *testing.T, addr string, config *sarama.Config, topic string, sent []*sarama.ProducerMessage) {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{addr}, config)
	if err != nil {
		t.Fatalf("create sarama consumer: %v", err)
	}
	defer consumer.Close()
	partition, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("consume %s/0: %v", topic, err)
	}
	defer partition.Close()
	deadline := time.After(requestWaitMax)
	for i, want := range sent {
		select {
		case got := <-partition.Messages():
			compareSaramaMessage(t, i, want, got)
		case err := <-partition.Errors():
			t.Fatalf("consume %s/0 after %d messages: %v", topic, i, err)
		case <-deadline:
			t.Fatalf("consume %s/0: only %d of %d messages within %s", topic, i, len(sent), requestWaitMax)
		}
	}
}

func compareSaramaMessage(t *testing.T, i int, want *sarama.ProducerMessage, got *sarama.ConsumerMessage) {
	t.Helper()
	if got.Offset != want.Offset || got.Partition != want.Partition {
		t.Fatalf("message %d: at %d@%d, producer reported %d@%d", i, got.Partition, got.Offset, want.Partition, want.Offset)
	}
	value, _ := want.Value.Encode()
	if !bytes.Equal(got.Value, value) {
		t.Fatalf("message %d: value %q, want %q", i, got.Value, value)
	}
	var key []byte
	if want.Key != nil {
		key, _ = want.Key.Encode()
	}
	if (got.Key == nil) != (key == nil) || !bytes.Equal(got.Key, key) {
		t.Fatalf("message %d: key %q (nil %t), want %q (nil %t)", i, got.Key, got.Key == nil, key, key == nil)
	}
	if len(got.Headers) != len(want.Headers) {
		t.Fatalf("message %d: %d headers, want %d", i, len(got.Headers), len(want.Headers))
	}
	for h, header := range want.Headers {
		if !bytes.Equal(got.Headers[h].Key, header.Key) || !bytes.Equal(got.Headers[h].Value, header.Value) {
			t.Fatalf("message %d: header %d is %q=%q, want %q=%q", i, h, got.Headers[h].Key, got.Headers[h].Value, header.Key, header.Value)
		}
	}
}
