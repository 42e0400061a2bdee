package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/internal/testio"
)

// TestSecondServerOnOneDataDir: a second `cairn serve` on a data dir in use
// exits at once with an error naming the holder's pid, leaving the first
// serving; the lock dies with its process, so after a kill -9 the data dir
// starts again.
func TestSecondServerOnOneDataDir(t *testing.T) {
	first := startCairn(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	second := exec.CommandContext(ctx, cairnBinary, "serve", "--data-dir", first.dataDir,
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t))
	var stderr bytes.Buffer
	second.Stdout, second.Stderr = &stderr, &stderr
	err := second.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || ctx.Err() != nil {
		t.Fatalf("second server on the same data dir: %v (context: %v)\n%s", err, ctx.Err(), stderr.String())
	}
	want := fmt.Sprintf("in use by another cairn process (pid %d)", first.cmd.Process.Pid)
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("second server's error does not say %q:\n%s", want, stderr.String())
	}
	first.requireAlive(t)
	if status, body, err := first.healthz(); err != nil || status != http.StatusOK {
		t.Fatalf("first server after the refused start: %d %q %v", status, body, err)
	}
	first.Kill()
	first.Restart()
}

// flipSecondBatchMagic damages the second batch of a segment as a bit flip
// on disk would; a restart after a clean stop trusts the segment.
func flipSecondBatchMagic(t *testing.T, name string) {
	t.Helper()
	if err := testio.FlipSecondBatchMagicInFile(name); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedPartitionReported: a partition whose log is damaged is reported
// as soon as a read finds it, everywhere an operator looks, and refuses
// writes; `cairn consume --until-end` fails with the broker's error instead
// of waiting forever.
func TestDamagedPartitionReported(t *testing.T) {
	server := startCairn(t, "")
	const topic = "damaged"
	createTopic(t, server.kafkaAddr, topic, 1, nil)
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic))
	for _, value := range []string{"one", "two"} { // one batch each
		produceSync(t, producer, &kgo.Record{Value: []byte(value)})
	}
	producer.Close()
	server.Stop()
	flipSecondBatchMagic(t, filepath.Join(server.dataDir, topic+"-0", "00000000000000000000.log"))
	server.Restart()

	consumed := runCairnCLI(t, server, "", "consume", topic, "--from", "beginning", "--until-end")
	if consumed.exitCode == 0 || !strings.Contains(consumed.stderr, "KAFKA_STORAGE_ERROR") {
		t.Fatalf("consume of the damaged partition: exit %d\nstdout:\n%s\nstderr:\n%s", consumed.exitCode, consumed.stdout, consumed.stderr)
	}
	// Now known offline: the consumer is told before it starts fetching.
	again := runCairnCLI(t, server, "", "consume", topic, "--from", "beginning", "--until-end")
	if again.exitCode == 0 || !strings.Contains(again.stderr, "LEADER_NOT_AVAILABLE") {
		t.Fatalf("consume of the partition known offline: exit %d\nstderr:\n%s", again.exitCode, again.stderr)
	}
	if status, body, err := server.healthz(); err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "1 partitions offline") {
		t.Errorf("healthz with a damaged partition: %d %q %v", status, body, err)
	}
	if _, metrics, err := httpGet("http://" + server.httpAddr + "/metrics"); err != nil || !strings.Contains(metrics, "cairn_partitions_offline 1") {
		t.Errorf("metrics do not count the damaged partition offline (%v)", err)
	}
	if !strings.Contains(server.stderr.String(), "partition offline") {
		t.Errorf("the server's log does not say the partition is offline")
	}
	described := cairnOK(t, server, "", "topic", "describe", topic)
	if !regexp.MustCompile(`(?m)^0\s+-1\s+-1\s+\S+\s+\S+\s+-\s+-\s+OFFLINE: `).MatchString(described) {
		t.Errorf("describe does not show the partition offline:\n%s", described)
	}
	if code := rawProduceErrorCode(t, newKgo(t, server.kafkaAddr), topic); code != kerr.KafkaStorageError.Code {
		t.Errorf("produce to the damaged partition: error code %d, want KAFKA_STORAGE_ERROR", code)
	}
}

// rawProduceErrorCode sends one record to partition 0 directly, whatever
// the metadata says, and returns the partition's error code.
func rawProduceErrorCode(t *testing.T, client *kgo.Client, topic string) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte("after")}}, batch.None)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testContext(t), client)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// runServeToExit runs `cairn serve` on dataDir, which must exit at once
// with an error, and returns what it printed.
func runServeToExit(t *testing.T, dataDir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	serve := exec.CommandContext(ctx, cairnBinary, "serve", "--data-dir", dataDir,
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t))
	var output bytes.Buffer
	serve.Stdout, serve.Stderr = &output, &output
	err := serve.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || ctx.Err() != nil {
		t.Fatalf("cairn serve --data-dir %s: %v (context: %v), want a refused start\n%s", dataDir, err, ctx.Err(), output.String())
	}
	return output.String()
}

// TestLostTopicsFileDeletesNothing: when the metadata (node.json and meta/,
// which hold the topics) is gone (lost, or a backup restored without it)
// the server refuses to start, names the
// partition directories it does not know and deletes none; an operator who
// moves them out of the data dir (as the message says) can start again, and
// the records are still in the moved directories.
func TestLostTopicsFileDeletesNothing(t *testing.T) {
	server := startCairn(t, "")
	const topic = "precious"
	createTopic(t, server.kafkaAddr, topic, 2, nil)
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic))
	produceSync(t, producer, &kgo.Record{Value: []byte("keep me")})
	producer.Close()
	server.Stop()
	for _, name := range []string{"node.json", "meta"} {
		if err := os.RemoveAll(filepath.Join(server.dataDir, name)); err != nil {
			t.Fatal(err)
		}
	}

	refused := runServeToExit(t, server.dataDir)
	for _, want := range []string{topic + "-0", topic + "-1", "Nothing was deleted", "move these directories out of"} {
		if !strings.Contains(refused, want) {
			t.Errorf("refused start does not say %q:\n%s", want, refused)
		}
	}
	aside := t.TempDir()
	for _, dir := range []string{topic + "-0", topic + "-1"} {
		if err := os.Rename(filepath.Join(server.dataDir, dir), filepath.Join(aside, dir)); err != nil {
			t.Fatalf("move %s aside (it must still exist): %v", dir, err)
		}
	}
	server.Restart()
	var kept int64
	for _, dir := range []string{topic + "-0", topic + "-1"} {
		info, err := os.Stat(filepath.Join(aside, dir, "00000000000000000000.log"))
		if err != nil {
			t.Fatal(err)
		}
		kept += info.Size()
	}
	if kept == 0 {
		t.Fatal("the moved partitions hold no records")
	}
}
