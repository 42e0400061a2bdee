package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const kafkajsWaitMax = 2 * time.Minute

// kafkajsResult is what js/produce.js writes: every message it sent with the
// offset the broker acknowledged, and fetchTopicOffsets' answer.
type kafkajsResult struct {
	Offsets []struct {
		Partition int32  `json:"partition"`
		High      string `json:"high"`
		Low       string `json:"low"`
	} `json:"offsets"`
	Messages []struct {
		Label     string            `json:"label"`
		Partition int32             `json:"partition"`
		Offset    string            `json:"offset"`
		Key       *string           `json:"key"`
		Value     string            `json:"value"`
		Headers   map[string]string `json:"headers"`
	} `json:"messages"`
}

// TestKafkajs proves kafkajs, the Node.js client, works against the server:
// its admin client creates a topic (and is told when it already exists),
// reads topic metadata and offsets; its producer writes uncompressed and
// gzip batches, plain and idempotent; and franz-go then reads every message
// back at the offset kafkajs was given, with its key, value and headers.
func TestKafkajs(t *testing.T) {
	node := requireTool(t, "node")
	jsDir, err := filepath.Abs("js")
	if err != nil {
		t.Fatalf("find js dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "kafkajs", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kafkajs is not installed in %s (run npm ci there): %v", jsDir, err)
		}
		t.Skipf("kafkajs is not installed in %s; run `npm ci` there to run this test", jsDir)
	}
	server := startCairn(t, "")
	const topic = "kafkajs"
	resultFile := filepath.Join(t.TempDir(), "result.json")
	runTool(t, kafkajsWaitMax, "", []string{
		"CAIRN_BROKER=" + server.kafkaAddr,
		"CAIRN_TOPIC=" + topic,
		"CAIRN_RESULT_FILE=" + resultFile,
	}, node, filepath.Join(jsDir, "produce.js"))

	data, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatalf("read kafkajs result: %v", err)
	}
	var result kafkajsResult
	if err := json.Unmarshal(data, &result); err != nil {
		t.Fatalf("decode kafkajs result: %v\n%s", err, data)
	}
	if len(result.Messages) != 80 {
		t.Fatalf("kafkajs reported %d messages, want 80 (4 sends of 20)", len(result.Messages))
	}

	var sent []*kgo.Record
	for _, message := range result.Messages {
		offset, err := strconv.ParseInt(message.Offset, 10, 64)
		if err != nil {
			t.Fatalf("kafkajs offset %q: %v", message.Offset, err)
		}
		record := &kgo.Record{Topic: topic, Partition: message.Partition, Offset: offset, Value: []byte(message.Value)}
		if message.Key != nil {
			record.Key = []byte(*message.Key)
		}
		// kafkajs writes a headers object in its key order: client, label.
		record.Headers = []kgo.RecordHeader{
			{Key: "client", Value: []byte(message.Headers["client"])},
			{Key: "label", Value: []byte(message.Headers["label"])},
		}
		sent = append(sent, record)
	}
	got := readAll(t, server.kafkaAddr, topic)
	requireSameRecords(t, sent, got)

	// One batch per send and partition, in send order: none, gzip, none, gzip.
	codecs := storedCodecs(t, server.kafkaAddr, topic, 0)
	if want := []int8{codecNone, codecGzip, codecNone, codecGzip}; !slices.Equal(codecs, want) {
		t.Errorf("partition 0 batches stored with codecs %v, want %v", codecs, want)
	}

	ends := endOffsets(t, server.kafkaAddr, topic)
	for _, listed := range result.Offsets {
		if want := strconv.FormatInt(ends[listed.Partition], 10); listed.High != want {
			t.Errorf("kafkajs fetchTopicOffsets: partition %d high %s, franz-go lists %s", listed.Partition, listed.High, want)
		}
	}
}
