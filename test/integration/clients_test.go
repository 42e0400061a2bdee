package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestWaitMax bounds one client call against the local server.
const requestWaitMax = 30 * time.Second

// newKgo returns a franz-go client for the server, closed when the test ends.
// Retries are bounded so a broken server fails a test instead of hanging it.
func newKgo(t *testing.T, addr string, options ...kgo.Opt) *kgo.Client {
	t.Helper()
	options = append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.RecordDeliveryTimeout(requestWaitMax),
		kgo.RetryTimeout(requestWaitMax),
	}, options...)
	client, err := kgo.NewClient(options...)
	if err != nil {
		t.Fatalf("create franz-go client for %s: %v", addr, err)
	}
	t.Cleanup(client.Close)
	return client
}

// newAdmin returns a kadm client over a fresh franz-go client.
func newAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newKgo(t, addr))
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestWaitMax)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates a topic and fails the test on any error.
func createTopic(t *testing.T, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	response, err := newAdmin(t, addr).CreateTopic(testContext(t), partitions, -1, configs, topic)
	if err == nil {
		err = response.Err
	}
	if err != nil {
		t.Fatalf("create topic %q with %d partitions: %v (%s)", topic, partitions, err, response.ErrMessage)
	}
}

// produceSync produces records with client and fails the test unless every
// one is acknowledged. The records' partitions and offsets are filled in.
func produceSync(t *testing.T, client *kgo.Client, records ...*kgo.Record) {
	t.Helper()
	if err := client.ProduceSync(testContext(t), records...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(records), err)
	}
}

// endOffsets returns each partition's high watermark.
func endOffsets(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	listed, err := newAdmin(t, addr).ListEndOffsets(testContext(t), topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %q: %v", topic, err)
	}
	ends := make(map[int32]int64)
	for partition, offset := range listed[topic] {
		ends[partition] = offset.Offset
	}
	return ends
}

// waitEndOffset waits until a partition's high watermark reaches end. The
// server's high watermark is the durable end of the log, so after an acks=1
// acknowledgement it may trail the acknowledged offset until the next sync.
func waitEndOffset(t *testing.T, addr, topic string, partition int32, end int64) {
	t.Helper()
	admin := newAdmin(t, addr)
	deadline := time.Now().Add(requestWaitMax)
	for {
		listed, err := admin.ListEndOffsets(testContext(t), topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			t.Fatalf("list end offsets of %q: %v", topic, err)
		}
		got := listed[topic][partition].Offset
		if got >= end {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%d: high watermark still %d after %s, want %d", topic, partition, got, requestWaitMax, end)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAll reads every partition of topic from its log start to the high
// watermark as listed now, with a direct (groupless) consumer, and returns
// the records sorted by partition then offset.
func readAll(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	return readFrom(t, addr, topic, nil)
}

// readFrom is readAll starting at the given offsets; a partition not in
// starts is read from its log start.
func readFrom(t *testing.T, addr, topic string, starts map[int32]int64) []*kgo.Record {
	t.Helper()
	var records []*kgo.Record
	readEach(t, addr, topic, starts, func(record *kgo.Record) { records = append(records, record) })
	sortRecords(records)
	return records
}

// readEach calls fn with every record from starts (the log start for a
// partition not named) up to the high watermarks listed now, in offset order
// within each partition, without keeping them: the crash test reads more
// records than are worth holding at once.
func readEach(t *testing.T, addr, topic string, starts map[int32]int64, fn func(*kgo.Record)) {
	t.Helper()
	ends := endOffsets(t, addr, topic)
	offsets := make(map[int32]kgo.Offset)
	pending := make(map[int32]int64)
	for partition, end := range ends {
		start, given := starts[partition]
		if given && start >= end {
			continue
		}
		if given {
			offsets[partition] = kgo.NewOffset().At(start)
		} else {
			offsets[partition] = kgo.NewOffset().AtStart()
		}
		pending[partition] = end
	}
	if len(pending) == 0 {
		return
	}
	client := newKgo(t, addr,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer client.Close()
	if err := pollEach(client, pending, requestWaitMax, fn); err != nil {
		t.Fatalf("read %q up to %v: %v", topic, ends, err)
	}
}

// pollUntil polls until every partition in ends has delivered the record
// just below its end offset, or waitMax passes, and returns the records
// sorted by partition then offset.
func pollUntil(client *kgo.Client, ends map[int32]int64, waitMax time.Duration) ([]*kgo.Record, error) {
	var records []*kgo.Record
	err := pollEach(client, ends, waitMax, func(record *kgo.Record) { records = append(records, record) })
	sortRecords(records)
	return records, err
}

// pollEach polls until every partition in ends has delivered the record just
// below its end offset, calling fn for each record, or fails after waitMax
// without progress.
func pollEach(client *kgo.Client, ends map[int32]int64, waitMax time.Duration, fn func(*kgo.Record)) error {
	done := make(map[int32]bool)
	for partition, end := range ends {
		done[partition] = end == 0
	}
	read := 0
	for !allTrue(done) {
		// The wait restarts with every poll that returns records, so a
		// long read fails only when it stalls.
		ctx, cancel := context.WithTimeout(context.Background(), waitMax)
		fetches := client.PollFetches(ctx)
		stalled := ctx.Err() != nil
		cancel()
		if stalled {
			return fmt.Errorf("no records for %s after reading %d; done per partition %v", waitMax, read, done)
		}
		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			fetchErr = errors.Join(fetchErr, fmt.Errorf("fetch %s/%d: %w", topic, partition, err))
		})
		if fetchErr != nil {
			return fetchErr
		}
		fetches.EachRecord(func(record *kgo.Record) {
			read++
			fn(record)
			if record.Offset >= ends[record.Partition]-1 {
				done[record.Partition] = true
			}
		})
	}
	return nil
}

func sortRecords(records []*kgo.Record) {
	sort.Slice(records, func(i, j int) bool {
		if records[i].Partition != records[j].Partition {
			return records[i].Partition < records[j].Partition
		}
		return records[i].Offset < records[j].Offset
	})
}

func allTrue(m map[int32]bool) bool {
	for _, v := range m {
		if !v {
			return false
		}
	}
	return true
}

// storedCodecs fetches partition 0 of topic with a raw Fetch request and
// returns the compression codec (attributes & 7) of every batch, in order.
// It shows what the server stored and serves, which clients hide by
// decompressing.
func storedCodecs(t *testing.T, addr, topic string, partition int32) []int8 {
	t.Helper()
	client := newKgo(t, addr)
	request := kmsg.NewPtrFetchRequest()
	request.ReplicaID = -1
	request.MaxWaitMillis = 0
	request.MaxBytes = 64 << 20
	fetchTopic := kmsg.NewFetchRequestTopic()
	fetchTopic.Topic = topic
	fetchPartition := kmsg.NewFetchRequestTopicPartition()
	fetchPartition.Partition = partition
	fetchPartition.FetchOffset = 0
	fetchPartition.PartitionMaxBytes = 64 << 20
	fetchTopic.Partitions = append(fetchTopic.Partitions, fetchPartition)
	request.Topics = append(request.Topics, fetchTopic)
	// By name, so at most v12: from v13 a fetch names topics by id.
	raw, err := client.Request(testContext(t), namedFetch{request})
	if err != nil {
		t.Fatalf("raw fetch %s/%d: %v", topic, partition, err)
	}
	response := raw.(*kmsg.FetchResponse)
	if len(response.Topics) != 1 || len(response.Topics[0].Partitions) != 1 {
		t.Fatalf("raw fetch %s/%d: want one topic with one partition, got %+v", topic, partition, response.Topics)
	}
	answered := response.Topics[0].Partitions[0]
	if answered.ErrorCode != 0 {
		t.Fatalf("raw fetch %s/%d: error code %d", topic, partition, answered.ErrorCode)
	}
	var codecs []int8
	for data := answered.RecordBatches; len(data) > 0; {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(data); err != nil {
			break // a partial batch at the end of a size-bounded fetch
		}
		codecs = append(codecs, int8(batch.Attributes&0x07))
		data = data[12+int(batch.Length):] // offset (8) and length (4) precede the counted bytes
	}
	return codecs
}

// Compression codec numbers in a RecordBatch's attributes (Kafka protocol).
const (
	codecNone   int8 = 0
	codecGzip   int8 = 1
	codecSnappy int8 = 2
	codecLz4    int8 = 3
	codecZstd   int8 = 4
)

// murmur2Partition is the partition Kafka's default partitioner gives a
// non-null key: murmur2 of the key, sign bit cleared, modulo the count. It is
// written out here, independent of any client, so the test checks clients
// and server against the definition.
func murmur2Partition(key []byte, partitions int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % partitions
}

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for len(data) >= 4 {
		k := uint32(data[0]) | uint32(data[1])<<8 | uint32(data[2])<<16 | uint32(data[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// TestMurmur2MatchesKafka proves the test's partitioner against hash values
// from Apache Kafka's own partitioner tests, so a partition mismatch later
// blames the client or server, not this helper.
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tc.key))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// namedFetch is a fetch naming its topics, so at most v12: from v13 a fetch
// names them by id.
type namedFetch struct{ *kmsg.FetchRequest }

func (namedFetch) MaxVersion() int16 { return 12 }
