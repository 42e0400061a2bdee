package integration

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAdminLifecycle proves the admin APIs end to end through kadm: a topic
// is created with configs, which describe reports as the topic's own; an
// invalid config is refused without creating anything; incremental alters
// set and delete configs and refuse a bad batch as a whole; partitions are
// added; records are deleted up to an offset; and after a clean restart the
// configs, partition count and log start offset are still there. A deleted
// topic stays deleted across a SIGKILL restart.
func TestAdminLifecycle(t *testing.T) {
	server := startCairn(t, "")
	admin := newAdmin(t, server.kafkaAddr)
	const topic = "admin-orders"

	createTopic(t, server.kafkaAddr, topic, 1, map[string]*string{
		"retention.ms":      kadm.StringPtr("3600000"),
		"cleanup.policy":    kadm.StringPtr("delete"),
		"max.message.bytes": kadm.StringPtr("2000000"),
	})
	requireTopicConfigs(t, admin, topic, map[string]string{
		"retention.ms": "3600000", "cleanup.policy": "delete", "max.message.bytes": "2000000",
	}, []string{"segment.bytes"})

	requireCreateRefused(t, admin, "admin-invalid", map[string]*string{"retention.ms": kadm.StringPtr("soon")}, kerr.InvalidConfig)

	alterTopic(t, admin, topic, nil,
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("1048576")},
		kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "max.message.bytes"})
	alterTopic(t, admin, topic, kerr.InvalidConfig,
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1")},
		kadm.AlterConfig{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("shred")})
	wantConfigs := map[string]string{"retention.ms": "7200000", "segment.bytes": "1048576", "cleanup.policy": "delete"}
	requireTopicConfigs(t, admin, topic, wantConfigs, []string{"max.message.bytes"})

	grown, err := admin.UpdatePartitions(testContext(t), 3, topic)
	if err == nil {
		err = grown[topic].Err
	}
	if err != nil {
		t.Fatalf("grow %s to 3 partitions: %v (%s)", topic, err, grown[topic].ErrMessage)
	}
	requirePartitionCount(t, admin, topic, 3)

	// Five records on partition 0 and five on partition 2, then the first
	// three of partition 0 deleted.
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 10 {
		produceSync(t, producer, &kgo.Record{Partition: int32(i % 2 * 2), Value: fmt.Appendf(nil, "%d", i)})
	}
	deleteRecordsBelow(t, admin, topic, 0, 3)
	requireAfterDelete := func(when string) {
		t.Helper()
		records := readAll(t, server.kafkaAddr, topic)
		var offsets []int64
		for _, record := range records {
			if record.Partition == 0 {
				offsets = append(offsets, record.Offset)
			}
		}
		if fmt.Sprint(offsets) != "[3 4]" || len(records) != 7 {
			t.Fatalf("%s: partition 0 offsets %v (want [3 4]), %d records in all (want 7)", when, offsets, len(records))
		}
	}
	requireAfterDelete("after delete records")

	server.Stop()
	server.Restart()
	admin = newAdmin(t, server.kafkaAddr)
	requireTopicConfigs(t, admin, topic, wantConfigs, []string{"max.message.bytes"})
	requirePartitionCount(t, admin, topic, 3)
	requireAfterDelete("after a clean restart")

	dropped, err := admin.DeleteTopic(testContext(t), topic)
	if err == nil {
		err = dropped.Err
	}
	if err != nil {
		t.Fatalf("delete topic %s: %v (%s)", topic, err, dropped.ErrMessage)
	}
	requireTopicAbsent(t, admin, topic)
	server.Kill()
	server.Restart()
	requireTopicAbsent(t, newAdmin(t, server.kafkaAddr), topic)
}

// requireCreateRefused checks that creating topic with configs fails with
// wantErr and leaves no topic behind.
func requireCreateRefused(t *testing.T, admin *kadm.Client, topic string, configs map[string]*string, wantErr error) {
	t.Helper()
	refused, err := admin.CreateTopic(testContext(t), 1, -1, configs, topic)
	if err == nil {
		err = refused.Err
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("create %s: error %v, want %v", topic, err, wantErr)
	}
	requireTopicAbsent(t, admin, topic)
}

// deleteRecordsBelow deletes the records of one partition below offset and
// checks the new log start offset the broker reports.
func deleteRecordsBelow(t *testing.T, admin *kadm.Client, topic string, partition int32, offset int64) {
	t.Helper()
	var below kadm.Offsets
	below.AddOffset(topic, partition, offset, -1)
	deleted, err := admin.DeleteRecords(testContext(t), below)
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		t.Fatalf("delete records of %s/%d below offset %d: %v", topic, partition, offset, err)
	}
	if got, _ := deleted.Lookup(topic, partition); got.LowWatermark != offset {
		t.Fatalf("delete records of %s/%d: low watermark %d, want %d", topic, partition, got.LowWatermark, offset)
	}
}

// requireTopicConfigs checks that each key in own is reported with its value
// as the topic's own (dynamic topic) config, and each key in defaults comes
// from the defaults.
func requireTopicConfigs(t *testing.T, admin *kadm.Client, topic string, own map[string]string, defaults []string) {
	t.Helper()
	described, err := admin.DescribeTopicConfigs(testContext(t), topic)
	if err != nil {
		t.Fatalf("describe configs of %s: %v", topic, err)
	}
	resource, err := described.On(topic, nil)
	if err == nil {
		err = resource.Err
	}
	if err != nil {
		t.Fatalf("describe configs of %s: %v (%s)", topic, err, resource.ErrMessage)
	}
	byKey := make(map[string]kadm.Config)
	for _, config := range resource.Configs {
		byKey[config.Key] = config
	}
	for key, want := range own {
		config, found := byKey[key]
		if !found || config.MaybeValue() != want || config.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("config %s of %s: found %t, value %q, source %v; want %q from DYNAMIC_TOPIC_CONFIG",
				key, topic, found, config.MaybeValue(), config.Source, want)
		}
	}
	for _, key := range defaults {
		config, found := byKey[key]
		if !found || config.Source != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("config %s of %s: found %t, value %q, source %v; want the default",
				key, topic, found, config.MaybeValue(), config.Source)
		}
	}
}

// alterTopic applies incremental config changes and checks the outcome is
// wantErr (nil for success).
func alterTopic(t *testing.T, admin *kadm.Client, topic string, wantErr error, alterations ...kadm.AlterConfig) {
	t.Helper()
	responses, err := admin.AlterTopicConfigs(testContext(t), alterations, topic)
	if err != nil {
		t.Fatalf("alter configs of %s: %v", topic, err)
	}
	response, err := responses.On(topic, nil)
	if err == nil {
		err = response.Err
	}
	if wantErr == nil && err != nil {
		t.Fatalf("alter configs of %s: %v (%s)", topic, err, response.ErrMessage)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Fatalf("alter configs of %s: error %v, want %v", topic, err, wantErr)
	}
}

func requirePartitionCount(t *testing.T, admin *kadm.Client, topic string, want int) {
	t.Helper()
	topics, err := admin.ListTopics(testContext(t), topic)
	if err != nil {
		t.Fatalf("list topic %s: %v", topic, err)
	}
	detail := topics[topic]
	if detail.Err != nil || len(detail.Partitions) != want {
		t.Fatalf("topic %s: %d partitions (err %v), want %d", topic, len(detail.Partitions), detail.Err, want)
	}
}

// requireTopicAbsent checks that metadata (which kadm requests without
// auto-creation) does not know the topic.
func requireTopicAbsent(t *testing.T, admin *kadm.Client, topic string) {
	t.Helper()
	topics, err := admin.ListTopics(testContext(t))
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	if topics.Has(topic) {
		t.Fatalf("topic %s exists, want it absent", topic)
	}
}
