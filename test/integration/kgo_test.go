package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKgoCodecsAndAcks proves franz-go round trips with every codec, both
// as an idempotent acks=all producer and as an acks=1 producer: keys, null
// keys, empty values and headers come back exactly, at the offsets the
// produce acknowledgements reported, and batches are stored compressed as
// sent.
func TestKgoCodecsAndAcks(t *testing.T) {
	server := startCairn(t, "")
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		id    int8
	}{
		{"none", kgo.NoCompression(), codecNone},
		{"gzip", kgo.GzipCompression(), codecGzip},
		{"snappy", kgo.SnappyCompression(), codecSnappy},
		{"lz4", kgo.Lz4Compression(), codecLz4},
		{"zstd", kgo.ZstdCompression(), codecZstd},
	}
	modes := []struct {
		name    string
		options []kgo.Opt
	}{
		{"idempotent-acks-all", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
		{"acks-1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
	}
	for _, codec := range codecs {
		for _, mode := range modes {
			t.Run(codec.name+"/"+mode.name, func(t *testing.T) {
				topic := "kgo-" + codec.name + "-" + mode.name
				createTopic(t, server.kafkaAddr, topic, 1, nil)
				options := append([]kgo.Opt{kgo.ProducerBatchCompression(codec.codec), kgo.DefaultProduceTopic(topic)}, mode.options...)
				producer := newKgo(t, server.kafkaAddr, options...)
				sent := variedRecords(topic, 300)
				produceSync(t, producer, sent...)
				last := sent[len(sent)-1]
				waitEndOffset(t, server.kafkaAddr, topic, last.Partition, last.Offset+1)
				requireSameRecords(t, sent, readAll(t, server.kafkaAddr, topic))
				for i, id := range storedCodecs(t, server.kafkaAddr, topic, 0) {
					if id != codec.id {
						t.Fatalf("batch %d stored with codec %d, want %d", i, id, codec.id)
					}
				}
			})
		}
	}
}

// variedRecords returns n records mixing keyed, null-key, empty-value and
// headered records, with compressible values.
func variedRecords(topic string, n int) []*kgo.Record {
	records := make([]*kgo.Record, n)
	for i := range records {
		record := &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "value %d %s", i, bytes.Repeat([]byte("ab"), i%40))}
		switch i % 4 {
		case 0:
			record.Key = fmt.Appendf(nil, "key-%d", i)
		case 1: // null key
		case 2:
			record.Key = []byte{}
			record.Value = []byte{}
		case 3:
			record.Key = fmt.Appendf(nil, "key-%d", i)
			record.Headers = []kgo.RecordHeader{{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)}, {Key: "empty", Value: nil}}
		}
		records[i] = record
	}
	return records
}

// requireSameRecords checks that got holds exactly the sent records, each at
// the partition and offset its acknowledgement reported, with the same key
// (null stays null), value and headers.
func requireSameRecords(t *testing.T, sent, got []*kgo.Record) {
	t.Helper()
	type place struct {
		partition int32
		offset    int64
	}
	byPlace := make(map[place]*kgo.Record, len(got))
	for _, record := range got {
		byPlace[place{record.Partition, record.Offset}] = record
	}
	if len(got) != len(sent) {
		t.Errorf("read %d records, sent %d", len(got), len(sent))
	}
	for i, want := range sent {
		record, found := byPlace[place{want.Partition, want.Offset}]
		if !found {
			t.Fatalf("record %d acknowledged at %d@%d is missing", i, want.Partition, want.Offset)
		}
		if (record.Key == nil) != (want.Key == nil) || !bytes.Equal(record.Key, want.Key) {
			t.Fatalf("record %d at %d@%d: key %q (nil %t), want %q (nil %t)",
				i, want.Partition, want.Offset, record.Key, record.Key == nil, want.Key, want.Key == nil)
		}
		if !bytes.Equal(record.Value, want.Value) {
			t.Fatalf("record %d at %d@%d: value %q, want %q", i, want.Partition, want.Offset, record.Value, want.Value)
		}
		if len(record.Headers) != len(want.Headers) {
			t.Fatalf("record %d at %d@%d: headers %v, want %v", i, want.Partition, want.Offset, record.Headers, want.Headers)
		}
		for h := range want.Headers {
			if record.Headers[h].Key != want.Headers[h].Key || !bytes.Equal(record.Headers[h].Value, want.Headers[h].Value) {
				t.Fatalf("record %d at %d@%d: headers %v, want %v", i, want.Partition, want.Offset, record.Headers, want.Headers)
			}
		}
	}
}

// TestKgoKeyedPartitioning proves that on a multi-partition topic the
// partition count the server reports lets franz-go's default partitioner put
// every keyed record on its murmur2 partition, that each partition keeps its
// own contiguous offsets, and that all records of one key stay in order.
func TestKgoKeyedPartitioning(t *testing.T) {
	server := startCairn(t, "")
	const (
		topic      = "keyed"
		partitions = 6
		keys       = 40
		perKey     = 10
	)
	createTopic(t, server.kafkaAddr, topic, partitions, nil)
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	var sent []*kgo.Record
	for round := range perKey {
		for key := range keys {
			sent = append(sent, &kgo.Record{Key: fmt.Appendf(nil, "entity-%d", key), Value: fmt.Appendf(nil, "%d", round)})
		}
	}
	produceSync(t, producer, sent...)
	for _, record := range sent {
		if want := murmur2Partition(record.Key, partitions); record.Partition != want {
			t.Fatalf("key %s went to partition %d, murmur2 says %d", record.Key, record.Partition, want)
		}
	}
	got := readAll(t, server.kafkaAddr, topic)
	requireSameRecords(t, sent, got)
	nextOffset := make(map[int32]int64)
	nextRound := make(map[string]int)
	for _, record := range got {
		if record.Offset != nextOffset[record.Partition] {
			t.Fatalf("partition %d: offset %d, want %d (offsets must be contiguous)", record.Partition, record.Offset, nextOffset[record.Partition])
		}
		nextOffset[record.Partition]++
		if want := fmt.Sprint(nextRound[string(record.Key)]); string(record.Value) != want {
			t.Fatalf("key %s: value %s, want %s (one key's records must stay in order)", record.Key, record.Value, want)
		}
		nextRound[string(record.Key)]++
	}
	if len(nextOffset) < 2 {
		t.Fatalf("records landed on %d partitions; %d keys should spread over several", len(nextOffset), keys)
	}
}

// TestKgoDirectConsumers proves the groupless consumers work: ConsumeTopics
// without a group reads every partition, ConsumePartitions starts at an
// offset in the middle, and ListOffsets by timestamp (through kadm) finds the
// first record at or after a time.
func TestKgoDirectConsumers(t *testing.T) {
	server := startCairn(t, "")
	const (
		topic   = "direct"
		records = 100
	)
	createTopic(t, server.kafkaAddr, topic, 3, nil)
	// franz-go measures the delivery timeout from a record's timestamp, so
	// records stamped in the past need it off.
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(0))
	// Explicit timestamps one second apart, so ListOffsets by time has a
	// known answer independent of the wall clock.
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var sent []*kgo.Record
	for i := range records {
		sent = append(sent, &kgo.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, "r%d", i), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	produceSync(t, producer, sent...)

	consumer := newKgo(t, server.kafkaAddr, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	all, err := pollUntil(consumer, endOffsets(t, server.kafkaAddr, topic), requestWaitMax)
	if err != nil {
		t.Fatalf("ConsumeTopics without a group: %v", err)
	}
	requireSameRecords(t, sent, all)

	// Partition 0 holds records 0, 3, ..., 99 (offsets 0-33), partitions 1
	// and 2 hold 33 records each. Start partition 0 at 20, partition 1 at 30,
	// and partition 2 (not named) at its log start.
	middle := readFrom(t, server.kafkaAddr, topic, map[int32]int64{0: 20, 1: 30})
	counts := make(map[int32]int)
	for _, record := range middle {
		counts[record.Partition]++
	}
	if counts[0] != 14 || counts[1] != 3 || counts[2] != 33 {
		t.Fatalf("reading partition 0 from 20, 1 from 30, 2 from the start: got counts %v, want 0:14 1:3 2:33", counts)
	}
	if first := middle[0]; first.Partition != 0 || first.Offset != 20 || string(first.Value) != "r60" {
		t.Fatalf("first record read: %d@%d %q, want 0@20 \"r60\"", first.Partition, first.Offset, first.Value)
	}

	// Record i is at partition i%3, offset i/3, stamped base+i seconds. The
	// first record at or after base+50.5s is i=51: partition 0 offset 17.
	// Partition 1 (i=52) offset 17, partition 2 (i=53) offset 17.
	at := base.Add(50*time.Second + 500*time.Millisecond).UnixMilli()
	listed, err := newAdmin(t, server.kafkaAddr).ListOffsetsAfterMilli(testContext(t), at, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("list offsets after %d ms: %v", at, err)
	}
	for partition := range int32(3) {
		if got := listed[topic][partition].Offset; got != 17 {
			t.Errorf("partition %d: offset after base+50.5s is %d, want 17", partition, got)
		}
	}
	// Past the newest record, Kafka answers the end offset.
	late, err := newAdmin(t, server.kafkaAddr).ListOffsetsAfterMilli(testContext(t), base.Add(time.Hour).UnixMilli(), topic)
	if err != nil {
		t.Fatalf("list offsets after the newest record: %v", err)
	}
	ends := endOffsets(t, server.kafkaAddr, topic)
	for partition := range int32(3) {
		if got := late[topic][partition].Offset; got != ends[partition] {
			t.Errorf("partition %d: offset after every record is %d, want the end offset %d", partition, got, ends[partition])
		}
	}
}
