package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/internal/cli"
)

// produce feeds input to `cairn produce` and fails the test if it fails.
func produce(t *testing.T, brokers, input string, args ...string) commandResult {
	t.Helper()
	all := append([]string{"produce"}, args...)
	result := invocation{stdin: strings.NewReader(input), args: append(all, "--brokers", brokers)}.run(t)
	if result.err != nil {
		t.Fatalf("cairn %s: %v\nstderr: %s", strings.Join(all, " "), result.err, result.stderr)
	}
	return result
}

// consumeJSON runs `cairn consume --json` with args and decodes every line.
func consumeJSON(t *testing.T, brokers, topic string, args ...string) []cli.JSONRecord {
	t.Helper()
	all := append([]string{"consume", topic, "--json", "--brokers", brokers}, args...)
	result := mustCairn(t, all...)
	var records []cli.JSONRecord
	for _, line := range strings.Split(strings.TrimSuffix(result.stdout, "\n"), "\n") {
		if line == "" {
			continue
		}
		var record cli.JSONRecord
		if err := json.Unmarshal([]byte(line), &record); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		records = append(records, record)
	}
	return records
}

func text(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func TestProduceThenConsumeWithEveryCompression(t *testing.T) {
	_, brokers := startCluster(t)
	input := "order-1:created\nno separator\norder-2:paid:in full\n:empty key\n\n"
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := "orders-" + codec
			mustCairn(t, "topic", "create", topic, "--brokers", brokers)
			result := produce(t, brokers, input, topic, "--key-separator", ":", "--compression", codec,
				"--header", "source=test", "--header", "codec="+codec)
			if !strings.HasSuffix(result.stderr, "produced 5 records to "+topic+"\n") {
				t.Errorf("summary missing: %q", result.stderr)
			}
			records := consumeJSON(t, brokers, topic, "--from", "beginning", "--until-end")
			want := []struct{ key, value string }{
				{"order-1", "created"},
				{"<null>", "no separator"},
				{"order-2", "paid:in full"},
				{"", "empty key"},
				{"<null>", ""},
			}
			if len(records) != len(want) {
				t.Fatalf("consumed %d records, want %d: %+v", len(records), len(want), records)
			}
			for i, record := range records {
				if record.Offset != int64(i) || record.Topic != topic || record.Partition != 0 {
					t.Errorf("record %d at %s/%d@%d", i, record.Topic, record.Partition, record.Offset)
				}
				if text(record.Key) != want[i].key || text(record.Value) != want[i].value {
					t.Errorf("record %d = %s=%s, want %s=%s", i, text(record.Key), text(record.Value), want[i].key, want[i].value)
				}
				if len(record.Headers) != 2 || record.Headers[0].Key != "source" || text(record.Headers[1].Value) != codec {
					t.Errorf("record %d headers %+v", i, record.Headers)
				}
				if _, err := time.Parse(time.RFC3339Nano, record.Timestamp); err != nil {
					t.Errorf("record %d timestamp %q: %v", i, record.Timestamp, err)
				}
			}
		})
	}
}

func TestConsumeFormatRendersTheTemplate(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "events", "--brokers", brokers)
	produce(t, brokers, "a=1\nb=2\n", "events", "--key-separator", "=", "--header", "type=Created")
	result := mustCairn(t, "consume", "events", "--from", "beginning", "--until-end", "--brokers", brokers,
		"--format", `{{.Topic}}/{{.Partition}}@{{.Offset}}\t{{.Key}}={{.Value}}\t{{.Header "type"}}\n`)
	if want := "events/0@0\ta=1\tCreated\nevents/0@1\tb=2\tCreated\n"; result.stdout != want {
		t.Errorf("got %q, want %q", result.stdout, want)
	}
	plain := mustCairn(t, "consume", "events", "--from", "beginning", "--until-end", "--brokers", brokers)
	if plain.stdout != "1\n2\n" {
		t.Errorf("default format printed %q, want the values", plain.stdout)
	}
	// --json wins, so a CAIRN_FORMAT in the environment cannot break it.
	both := invocation{
		env:  map[string]string{"CAIRN_FORMAT": "{{.Value}}"},
		args: []string{"consume", "events", "--json", "--from", "beginning", "--max", "1", "--brokers", brokers},
	}.run(t)
	if both.err != nil || !strings.HasPrefix(both.stdout, `{"topic":"events"`) {
		t.Errorf("--json with CAIRN_FORMAT: %v, %q", both.err, both.stdout)
	}
}

func TestConsumeFromOffsetAndMax(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "numbers", "--brokers", brokers)
	produce(t, brokers, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n", "numbers")

	fromSeven := mustCairn(t, "consume", "numbers", "--from", "7", "--until-end", "--brokers", brokers)
	if fromSeven.stdout != "7\n8\n9\n" {
		t.Errorf("--from 7 printed %q", fromSeven.stdout)
	}
	pastEnd := mustCairn(t, "consume", "numbers", "--from", "50", "--until-end", "--brokers", brokers)
	if pastEnd.stdout != "" {
		t.Errorf("--from past the end printed %q", pastEnd.stdout)
	}
	firstThree := mustCairn(t, "consume", "numbers", "--from", "beginning", "--max", "3", "--brokers", brokers)
	if firstThree.stdout != "0\n1\n2\n" {
		t.Errorf("--max 3 printed %q", firstThree.stdout)
	}
	// --max stops a consumer that would otherwise wait for new records.
	twoFromFive := mustCairn(t, "consume", "numbers", "--from", "5", "--max", "2", "--brokers", brokers)
	if twoFromFive.stdout != "5\n6\n" {
		t.Errorf("--from 5 --max 2 printed %q", twoFromFive.stdout)
	}
	if bad := cairn(t, "consume", "numbers", "--from", "yesterday", "--brokers", brokers); bad.err == nil {
		t.Errorf("--from yesterday accepted")
	}
}

func TestConsumeFromTime(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "timed", "--partitions", "2", "--brokers", brokers)
	produce(t, brokers, "old-1\nold-2\n", "timed")
	// Record timestamps have millisecond resolution: keep whole
	// milliseconds between the batches and the cut.
	time.Sleep(20 * time.Millisecond)
	cut := time.Now()
	time.Sleep(20 * time.Millisecond)
	produce(t, brokers, "new-1\nnew-2\nnew-3\n", "timed", "--partition", "1")

	records := consumeJSON(t, brokers, "timed", "--from", cut.Format(time.RFC3339Nano), "--until-end")
	var values []string
	for _, record := range records {
		values = append(values, text(record.Value))
	}
	if strings.Join(values, ",") != "new-1,new-2,new-3" {
		t.Errorf("--from %s consumed %v", cut.Format(time.RFC3339Nano), values)
	}
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	if records := consumeJSON(t, brokers, "timed", "--from", future, "--until-end"); len(records) != 0 {
		t.Errorf("--from a future time consumed %d records", len(records))
	}
}

func TestPartitionSelectionOnBothSides(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "spread", "--partitions", "3", "--brokers", brokers)
	produce(t, brokers, "x\ny\n", "spread", "--partition", "2")

	two := consumeJSON(t, brokers, "spread", "--from", "beginning", "--until-end", "--partition", "2")
	if len(two) != 2 || two[0].Partition != 2 || text(two[1].Value) != "y" {
		t.Errorf("partition 2 held %+v", two)
	}
	if others := consumeJSON(t, brokers, "spread", "--from", "beginning", "--until-end", "--partition", "0,1"); len(others) != 0 {
		t.Errorf("partitions 0 and 1 held %+v", others)
	}
	if missing := cairn(t, "consume", "spread", "--partition", "3", "--brokers", brokers); missing.err == nil ||
		!strings.Contains(missing.err.Error(), "no partition 3") {
		t.Errorf("--partition 3 err = %v", missing.err)
	}
}

func TestKeyedRecordsFollowTheKafkaPartitioner(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "keyed", "--partitions", "3", "--brokers", brokers)
	var input strings.Builder
	for i := range 30 {
		fmt.Fprintf(&input, "key-%d:%d\n", i%5, i)
	}
	produce(t, brokers, input.String(), "keyed", "--key-separator", ":")
	records := consumeJSON(t, brokers, "keyed", "--from", "beginning", "--until-end")
	if len(records) != 30 {
		t.Fatalf("consumed %d records", len(records))
	}
	// Kafka's default partitioner puts a keyed record in partition
	// toPositive(murmur2(key)) % partitions.
	for _, record := range records {
		key := text(record.Key)
		want := (kafkaMurmur2([]byte(key)) & 0x7fffffff) % 3
		if record.Partition != want {
			t.Errorf("key %s in partition %d, want %d", key, record.Partition, want)
		}
	}
}

// kafkaMurmur2 is the 32-bit murmur2 variant Kafka's Java client hashes keys
// with (seed 0x9747b28c), written from the algorithm's description.
func kafkaMurmur2(data []byte) int32 {
	const (
		seed     uint32 = 0x9747b28c
		multiply uint32 = 0x5bd1e995
		shift           = 24
	)
	hash := seed ^ uint32(len(data))
	whole := len(data) &^ 3
	for i := 0; i < whole; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= multiply
		k ^= k >> shift
		k *= multiply
		hash *= multiply
		hash ^= k
	}
	tail := data[whole:]
	switch len(tail) {
	case 3:
		hash ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		hash ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		hash ^= uint32(tail[0])
		hash *= multiply
	}
	hash ^= hash >> 13
	hash *= multiply
	hash ^= hash >> 15
	return int32(hash)
}

func TestKafkaMurmur2MatchesKafkasPublishedValues(t *testing.T) {
	// Values from the Java client's own hash tests.
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"abc":                        479470107,
	}
	for key, want := range cases {
		if got := kafkaMurmur2([]byte(key)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestConsumeJSONKeepsBytesThatAreNotUTF8(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "binary", "--brokers", brokers)
	produce(t, brokers, "k\xff|v\x80\x81\n", "binary", "--key-separator", "|")
	records := consumeJSON(t, brokers, "binary", "--from", "beginning", "--until-end")
	if len(records) != 1 {
		t.Fatalf("consumed %d records", len(records))
	}
	key, _ := base64.StdEncoding.DecodeString(records[0].KeyBase64)
	value, _ := base64.StdEncoding.DecodeString(records[0].ValueBase64)
	if string(key) != "k\xff" || string(value) != "v\x80\x81" {
		t.Errorf("exact bytes %q=%q, record %+v", key, value, records[0])
	}
}

func TestProduceAcksAndLongLines(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "acks", "--brokers", brokers)
	produce(t, brokers, "all\n", "acks", "--acks", "all")
	produce(t, brokers, "leader\n", "acks", "--acks", "1")
	produce(t, brokers, "none\n", "acks", "--acks", "0")
	long := strings.Repeat("L", 1000_000) // past bufio's 64 KiB default, under the 1 MiB batch limit
	produce(t, brokers, long+"\n", "acks")

	records := consumeJSON(t, brokers, "acks", "--from", "beginning", "--until-end")
	if len(records) != 4 || text(records[0].Value) != "all" || text(records[1].Value) != "leader" ||
		text(records[2].Value) != "none" || text(records[3].Value) != long {
		t.Errorf("consumed %d records", len(records))
	}
	if bad := cairn(t, "produce", "acks", "--acks", "2", "--brokers", brokers); bad.err == nil {
		t.Errorf("--acks 2 accepted")
	}
	if bad := cairn(t, "produce", "acks", "--compression", "brotli", "--brokers", brokers); bad.err == nil {
		t.Errorf("--compression brotli accepted")
	}
}

func TestProduceFromFile(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "files", "--brokers", brokers)
	path := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(path, []byte("one\r\ntwo\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "ignored stdin\n", "files", "--file", path)
	result := mustCairn(t, "consume", "files", "--from", "beginning", "--until-end", "--brokers", brokers)
	if result.stdout != "one\ntwo\n" {
		t.Errorf("consumed %q", result.stdout)
	}
	if missing := cairn(t, "produce", "files", "--file", filepath.Join(t.TempDir(), "nope"), "--brokers", brokers); missing.err == nil {
		t.Errorf("missing --file accepted")
	}
}

func TestProduceFailureExitsNonZeroAndSaysWhy(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "small", "--partitions", "2", "--brokers", brokers)
	// Partition 5 does not exist: every record fails, each says so.
	result := invocation{
		stdin: strings.NewReader("a\nb\n"),
		args:  []string{"produce", "small", "--partition", "5", "--brokers", brokers, "--timeout", "5s"},
	}.run(t)
	if result.err == nil || !strings.Contains(result.err.Error(), "2 of 2 records failed") {
		t.Fatalf("err = %v", result.err)
	}
	if !strings.Contains(result.stderr, "record from line 1: ") || !strings.Contains(result.stderr, "record from line 2: ") {
		t.Errorf("per-record errors missing: %q", result.stderr)
	}
	if !strings.Contains(result.stderr, "produced 0 records to small") {
		t.Errorf("summary missing: %q", result.stderr)
	}
}

func TestProduceReportsProgressWhenAsked(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "slow", "--brokers", brokers)
	reader, writer := io.Pipe()
	go func() {
		fmt.Fprintln(writer, "first")
		time.Sleep(progressInterval + 300*time.Millisecond)
		fmt.Fprintln(writer, "second")
		writer.Close()
	}()
	result := invocation{stdin: reader, args: []string{"produce", "slow", "--progress", "--brokers", brokers}}.run(t)
	if result.err != nil {
		t.Fatal(result.err)
	}
	if !strings.Contains(result.stderr, "acked 1 records, ") {
		t.Errorf("no progress line: %q", result.stderr)
	}
	if !strings.HasSuffix(result.stderr, "produced 2 records to slow\n") {
		t.Errorf("summary is not last: %q", result.stderr)
	}
}

// TestInterruptStopsConsumeCleanly runs the real binary entry point, sends it
// SIGINT while it waits for records, and expects a clean exit with every
// record it printed on stdout.
func TestInterruptStopsConsumeCleanly(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "live", "--brokers", brokers)
	produce(t, brokers, "a\nb\n", "live")

	command := exec.Command(os.Args[0], "consume", "live", "--from", "beginning")
	command.Env = []string{runMainEnv + "=1", "CAIRN_BROKERS=" + brokers}
	stdout, err := command.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	command.Stderr = &stderr
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for _, want := range []string{"a", "b"} {
		if !lines.Scan() || lines.Text() != want {
			command.Process.Kill()
			t.Fatalf("line %q, want %q (err %v)", lines.Text(), want, lines.Err())
		}
	}
	if err := command.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- command.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGINT: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		command.Process.Kill()
		t.Fatal("consume did not stop on SIGINT")
	}
}

// TestFailureIsOneLineAndExitCodeOne runs the real entry point on a command
// the broker refuses.
func TestFailureIsOneLineAndExitCodeOne(t *testing.T) {
	_, brokers := startCluster(t)
	command := exec.Command(os.Args[0], "topic", "describe", "missing", "--brokers", brokers)
	command.Env = []string{runMainEnv + "=1"}
	output, err := command.CombinedOutput()
	exitErr, ok := err.(*exec.ExitError)
	if !ok || exitErr.ExitCode() != 1 {
		t.Fatalf("err = %v, output %q; want exit code 1", err, output)
	}
	if !strings.HasPrefix(string(output), "cairn: ") || strings.Count(string(output), "\n") != 1 ||
		!strings.Contains(string(output), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("output %q, want one line naming the broker error", output)
	}
}

// TestInterruptStopsProduceAfterItsRecordsAreAcknowledged runs the real entry
// point with stdin left open, sends SIGINT once the records it has read are
// in the log, and expects a clean exit that reports them.
func TestInterruptStopsProduceAfterItsRecordsAreAcknowledged(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "typed", "--brokers", brokers)

	command := exec.Command(os.Args[0], "produce", "typed", "--brokers", brokers)
	command.Env = []string{runMainEnv + "=1"}
	stdin, err := command.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr strings.Builder
	command.Stderr = &stderr
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	waitForHighWatermark(t, brokers, "typed", 2)
	if err := command.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- command.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGINT: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		command.Process.Kill()
		t.Fatal("produce did not stop on SIGINT")
	}
	if !strings.HasSuffix(stderr.String(), "produced 2 records to typed\n") {
		t.Errorf("stderr %q, want the summary last", stderr.String())
	}
}

func waitForHighWatermark(t *testing.T, brokers, topic string, want int64) {
	t.Helper()
	connection := clientFlags{brokers: []string{brokers}, timeout: 5 * time.Second}
	admin, client, err := connection.newAdmin()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ends, err := admin.ListEndOffsets(t.Context(), topic)
		if err == nil {
			if end, found := ends.Lookup(topic, 0); found && end.Offset >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("high watermark of %s never reached %d (last error %v)", topic, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUntilEndFinishesWhenATransactionMarkerIsLast writes records in a
// committed transaction, which leaves the commit marker at the partition's
// last offset; --until-end must end there without printing the marker.
func TestUntilEndFinishesWhenATransactionMarkerIsLast(t *testing.T) {
	_, brokers := startCluster(t)
	mustCairn(t, "topic", "create", "txn", "--brokers", brokers)
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.TransactionalID("test-txn"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(t.Context(), kgo.StringRecord("a"), kgo.StringRecord("b")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := producer.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitForHighWatermark(t, brokers, "txn", 3) // two records and the marker

	result := mustCairn(t, "consume", "txn", "--from", "beginning", "--until-end", "--brokers", brokers)
	if result.stdout != "a\nb\n" {
		t.Errorf("printed %q", result.stdout)
	}
}
