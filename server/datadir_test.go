package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/internal/testio"
	"github.com/cairnlog/cairn/storage/vfs"
)

func testConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	return cfg
}

// TestSecondServerRefused: a second server on a data directory in use is
// refused with the holder's pid, before it touches anything; the first
// keeps serving, and once it stops the directory can be opened again.
func TestSecondServerRefused(t *testing.T) {
	cfg := testConfig(t.TempDir())
	logger := slog.New(slog.DiscardHandler)
	first, err := Start(cfg, vfs.Default(), logger)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(cfg, vfs.Default(), logger)
	if !errors.Is(err, vfs.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second server on the same data dir: %v", err)
	}
	if code, body := get(t, "http://"+first.HTTPAddr()+"/healthz"); code != 200 {
		t.Fatalf("first server after the refused start: %d %q", code, body)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Start(cfg, vfs.Default(), logger)
	if err != nil {
		t.Fatalf("start after the first server stopped: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFailedStartLeavesNoFiles: a start that fails because a port is taken
// creates nothing: no data directory, no node.json with a new cluster id.
func TestFailedStartLeavesNoFiles(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for name, edit := range map[string]func(*Config){
		"kafka port taken": func(c *Config) { c.KafkaAddr = taken.Addr().String() },
		"http port taken":  func(c *Config) { c.HTTPAddr = taken.Addr().String() },
	} {
		t.Run(name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			cfg := testConfig(dataDir)
			edit(&cfg)
			if s, err := Start(cfg, vfs.Default(), slog.New(slog.DiscardHandler)); err == nil {
				s.Close()
				t.Fatal("start on a taken port succeeded")
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
				entries, _ := os.ReadDir(dataDir)
				t.Fatalf("a failed start left the data dir behind (stat: %v, entries %v)", err, entries)
			}
		})
	}
}

// corruptSecondBatch flips the magic byte of the second batch of a segment,
// as a bit flip on disk would; a clean restart trusts the segment.
func corruptSecondBatch(t *testing.T, name string) {
	t.Helper()
	if err := testio.FlipSecondBatchMagicInFile(name); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptPartitionReported: the first fetch that finds a damaged batch
// takes the partition offline, and from then on everything says so: the
// log, /healthz, cairn_partitions_offline, metadata (no leader), and
// produce is refused with KAFKA_STORAGE_ERROR.
func TestCorruptPartitionReported(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var logs testio.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := Start(cfg, vfs.Default(), logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{"one", "two"} { // one batch each
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	producer.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	corruptSecondBatch(t, filepath.Join(cfg.DataDir, "t-0", "00000000000000000000.log"))

	s, err = Start(cfg, vfs.Default(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if code := fetchErrorCode(ctx, t, client); code != kerr.KafkaStorageError.Code {
		t.Fatalf("fetch of the damaged partition: error code %d, want KAFKA_STORAGE_ERROR", code)
	}
	if !strings.Contains(logs.String(), "partition offline") {
		t.Errorf("no log line says the partition is offline:\n%s", logs.String())
	}
	if code, body := get(t, "http://"+s.HTTPAddr()+"/healthz"); code != 503 || !strings.Contains(body, "1 partitions offline") {
		t.Errorf("healthz with a damaged partition: %d %q", code, body)
	}
	if _, metrics := get(t, "http://"+s.HTTPAddr()+"/metrics"); !strings.Contains(metrics, "cairn_partitions_offline 1") {
		t.Errorf("metrics do not count the damaged partition offline")
	}
	if code := produceErrorCode(ctx, t, client); code != kerr.KafkaStorageError.Code {
		t.Errorf("produce to the damaged partition: error code %d, want KAFKA_STORAGE_ERROR", code)
	}
	meta := kmsg.NewPtrMetadataRequest()
	topic := kmsg.NewMetadataRequestTopic()
	topic.Topic = kmsg.StringPtr("t")
	meta.Topics = append(meta.Topics, topic)
	resp, err := meta.RequestWith(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.Leader != -1 || p.ErrorCode != kerr.LeaderNotAvailable.Code {
		t.Errorf("metadata of the damaged partition: leader %d, error %d", p.Leader, p.ErrorCode)
	}
}

func fetchErrorCode(ctx context.Context, t *testing.T, client *kgo.Client) int16 {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0
	req.MaxBytes = 1 << 20
	topic := kmsg.NewFetchRequestTopic()
	topic.Topic = "t"
	partition := kmsg.NewFetchRequestTopicPartition()
	partition.PartitionMaxBytes = 1 << 20
	partition.CurrentLeaderEpoch = -1
	topic.Partitions = append(topic.Partitions, partition)
	req.Topics = append(req.Topics, topic)
	// By name, so at most v12: from v13 a fetch names topics by id.
	raw, err := client.Request(ctx, namedFetch{req})
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode
}

func produceErrorCode(ctx context.Context, t *testing.T, client *kgo.Client) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	topic := kmsg.NewProduceRequestTopic()
	topic.Topic = "t"
	partition := kmsg.NewProduceRequestTopicPartition()
	partition.Records = batchOf("after")
	topic.Partitions = append(topic.Partitions, partition)
	req.Topics = append(req.Topics, topic)
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// batchOf is one record with value as a producer sends it.
func batchOf(value string) []byte {
	return batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte(value)}}, batch.None)
}

// namedFetch is a fetch naming its topics, so at most v12: from v13 a fetch
// names them by id.
type namedFetch struct{ *kmsg.FetchRequest }

func (namedFetch) MaxVersion() int16 { return 12 }
