package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const cliWaitMax = 60 * time.Second

// cliResult is one finished cairn client command.
type cliResult struct {
	stdout, stderr string
	exitCode       int
}

// runCairnCLI runs the cairn binary as a client of server with --brokers
// added after args, and stdin as input.
func runCairnCLI(t *testing.T, server *cairnServer, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliWaitMax)
	defer cancel()
	cmd := exec.CommandContext(ctx, cairnBinary, append(args, "--brokers", server.kafkaAddr)...)
	cmd.Stdin = strings.NewReader(stdin)
	// Only what the test sets: a CAIRN_* variable in the caller's
	// environment must not change a flag under test.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	result := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		result.exitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("cairn %s: %v (context: %v)\nstderr:\n%s", strings.Join(args, " "), err, ctx.Err(), stderr.String())
	}
	return result
}

// cairnOK runs a cairn client command that must succeed and returns stdout.
func cairnOK(t *testing.T, server *cairnServer, stdin string, args ...string) string {
	t.Helper()
	result := runCairnCLI(t, server, stdin, args...)
	if result.exitCode != 0 {
		t.Fatalf("cairn %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), result.exitCode, result.stdout, result.stderr)
	}
	return result.stdout
}

// TestCLITopics proves the cairn topic commands against the real server:
// create (and the error for an existing topic), list, describe,
// alter-config, and delete.
func TestCLITopics(t *testing.T) {
	server := startCairn(t, "")
	const topic = "cli-topics"

	created := cairnOK(t, server, "", "topic", "create", topic, "--partitions", "3", "--config", "retention.ms=86400000")
	if !strings.HasPrefix(created, "created topic "+topic+" with 3 partitions, id ") {
		t.Errorf("topic create printed %q", created)
	}
	again := runCairnCLI(t, server, "", "topic", "create", topic)
	if again.exitCode != 1 || !strings.Contains(again.stderr, "TOPIC_ALREADY_EXISTS") {
		t.Errorf("creating an existing topic: exit %d, stderr %q; want exit 1 naming TOPIC_ALREADY_EXISTS", again.exitCode, again.stderr)
	}
	refused := runCairnCLI(t, server, "", "topic", "create", "cli-refused", "--config", "cleanup.policy=shred")
	if refused.exitCode != 1 || !strings.Contains(refused.stderr, "INVALID_CONFIG") {
		t.Errorf("creating with an invalid config: exit %d, stderr %q; want exit 1 naming INVALID_CONFIG", refused.exitCode, refused.stderr)
	}

	if listed := cairnOK(t, server, "", "topic", "list"); !strings.Contains(listed, topic+"\t3\n") || strings.Contains(listed, "cli-refused") {
		t.Errorf("topic list printed %q; want %q and no cli-refused", listed, topic+"\t3")
	}

	described := cairnOK(t, server, "", "topic", "describe", topic)
	for _, want := range []string{"partitions:  3", "retention.ms", "86400000"} {
		if !strings.Contains(described, want) {
			t.Errorf("topic describe lacks %q:\n%s", want, described)
		}
	}

	altered := cairnOK(t, server, "", "topic", "alter-config", topic, "--set", "retention.ms=3600000", "--set", "segment.bytes=1048576")
	if !strings.Contains(altered, "set retention.ms=3600000 on topic "+topic) {
		t.Errorf("alter-config printed %q", altered)
	}
	cairnOK(t, server, "", "topic", "alter-config", topic, "--delete", "segment.bytes")
	described = cairnOK(t, server, "", "topic", "describe", topic)
	if !strings.Contains(described, "3600000") || strings.Contains(described, "segment.bytes") {
		t.Errorf("after alter-config, describe should show retention.ms=3600000 and no segment.bytes override:\n%s", described)
	}

	if deleted := cairnOK(t, server, "", "topic", "delete", topic); deleted != "deleted topic "+topic+"\n" {
		t.Errorf("topic delete printed %q", deleted)
	}
	if listed := cairnOK(t, server, "", "topic", "list"); strings.Contains(listed, topic) {
		t.Errorf("topic list after delete still shows %s:\n%s", topic, listed)
	}
}

// TestCLIProduceConsume proves cairn produce and cairn consume against the
// real server: lines from stdin with a key separator, a header and zstd
// compression are stored on the murmur2 partition of their key (a line
// without the separator gets a null key), consume --json prints them exactly,
// --format renders a template, and --from with an RFC 3339 time starts at
// the first record written after that time.
func TestCLIProduceConsume(t *testing.T) {
	server := startCairn(t, "")
	const topic = "cli-orders"
	cairnOK(t, server, "", "topic", "create", topic, "--partitions", "2")

	produced := runCairnCLI(t, server, "order-1:created\norder-2:paid:card\nno key here\n",
		"produce", topic, "--key-separator", ":", "--header", "source=cli", "--compression", "zstd")
	if produced.exitCode != 0 || !strings.Contains(produced.stderr, "produced 3 records to "+topic) {
		t.Fatalf("produce: exit %d, stderr %q; want exit 0 and a summary of 3 records", produced.exitCode, produced.stderr)
	}

	lines := consumeJSON(t, server, topic, "--from", "beginning", "--until-end", "--json")
	if len(lines) != 3 {
		t.Fatalf("consume --json printed %d records, want 3: %+v", len(lines), lines)
	}
	byValue := make(map[string]consumedJSON)
	for _, line := range lines {
		if line.Value == nil {
			t.Fatalf("record at %d@%d has a null value", line.Partition, line.Offset)
		}
		byValue[*line.Value] = line
	}
	for _, want := range []struct{ key, value string }{{"order-1", "created"}, {"order-2", "paid:card"}} {
		line, found := byValue[want.value]
		if !found || line.Key == nil || *line.Key != want.key {
			t.Fatalf("no record %s=%s in %+v", want.key, want.value, lines)
		}
		if partition := murmur2Partition([]byte(want.key), 2); line.Partition != partition {
			t.Errorf("key %s is on partition %d, murmur2 says %d", want.key, line.Partition, partition)
		}
		if len(line.Headers) != 1 || line.Headers[0].Key != "source" || line.Headers[0].Value == nil || *line.Headers[0].Value != "cli" {
			t.Errorf("record %s: headers %+v, want source=cli", want.key, line.Headers)
		}
	}
	if unkeyed, found := byValue["no key here"]; !found || unkeyed.Key != nil {
		t.Errorf("line without the separator: found %t, key %v; want a record with a null key", found, unkeyed.Key)
	}

	formatted := cairnOK(t, server, "", "consume", topic, "--from", "beginning", "--until-end", "--partition",
		fmt.Sprint(byValue["created"].Partition), "--format", `{{.Key}}={{.Value}} {{.Header "source"}}\n`)
	if !strings.Contains(formatted, "order-1=created cli\n") {
		t.Errorf("consume --format printed %q, want a line %q", formatted, "order-1=created cli")
	}

	// Records get their timestamp when produced; a moment strictly between
	// the two produce runs splits them.
	time.Sleep(20 * time.Millisecond)
	between := time.Now()
	time.Sleep(20 * time.Millisecond)
	cairnOK(t, server, "later-1\nlater-2\n", "produce", topic)
	later := consumeJSON(t, server, topic, "--from", between.Format(time.RFC3339Nano), "--until-end", "--json")
	var values []string
	for _, line := range later {
		values = append(values, *line.Value)
	}
	if len(values) != 2 || !strings.HasPrefix(values[0], "later-") || !strings.HasPrefix(values[1], "later-") {
		t.Errorf("consume --from %s printed %v, want exactly later-1 and later-2", between.Format(time.RFC3339Nano), values)
	}
}

// consumedJSON is one line of `cairn consume --json` as documented in the
// command's help; written out here so the test checks the documented format,
// not whatever the encoder's type happens to be.
type consumedJSON struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp string  `json:"timestamp"`
	Key       *string `json:"key"`
	Value     *string `json:"value"`
	Headers   []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

// consumeJSON runs cairn consume and decodes its JSON lines.
func consumeJSON(t *testing.T, server *cairnServer, topic string, args ...string) []consumedJSON {
	t.Helper()
	out := cairnOK(t, server, "", append([]string{"consume", topic}, args...)...)
	var records []consumedJSON
	scanner := bufio.NewScanner(strings.NewReader(out))
	for scanner.Scan() {
		var record consumedJSON
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			t.Fatalf("consume printed a line that is not a JSON record: %q: %v", scanner.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, record.Timestamp); err != nil || record.Topic != topic {
			t.Fatalf("consume printed topic %q and timestamp %q (%v); want %q and an RFC 3339 time", record.Topic, record.Timestamp, err, topic)
		}
		records = append(records, record)
	}
	return records
}
