package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCleanShutdown proves SIGTERM stops the server with exit code 0 and that
// a restart on the same data dir serves every record written before, appends
// after them at the next offset, and logs its startup.
func TestCleanShutdown(t *testing.T) {
	server := startCairn(t, "")
	const topic = "shutdown"
	createTopic(t, server.kafkaAddr, topic, 2, nil)
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic))
	sent := variedRecords(topic, 200)
	produceSync(t, producer, sent...)
	producer.Close()

	server.Stop()
	server.Restart()
	requireSameRecords(t, sent, readAll(t, server.kafkaAddr, topic))

	ends := endOffsets(t, server.kafkaAddr, topic)
	after := &kgo.Record{Topic: topic, Partition: 1, Value: []byte("after restart")}
	produceSync(t, newKgo(t, server.kafkaAddr, kgo.RecordPartitioner(kgo.ManualPartitioner())), after)
	if after.Offset != ends[1] {
		t.Fatalf("first record after restart got offset %d, want the old end offset %d", after.Offset, ends[1])
	}
	server.Stop()

	// Two starts, two startup lines; the format is the server's own, so only
	// the message is checked.
	if starts := strings.Count(server.stderr.String(), "cairn serving"); starts != 2 {
		t.Errorf("found %d startup log lines, want 2:\n%s", starts, server.stderr.String())
	}
}

// TestHTTPEndpoints proves /healthz answers "ok" and /metrics serves
// Prometheus text with Cairn's own metrics, including the high watermark of a
// partition that was written to.
func TestHTTPEndpoints(t *testing.T) {
	server := startCairn(t, "")
	status, body, err := server.healthz()
	if err != nil || status != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: status %d body %q err %v; want 200 \"ok\"", status, body, err)
	}

	const topic = "metered"
	createTopic(t, server.kafkaAddr, topic, 1, nil)
	producer := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(topic))
	produceSync(t, producer, variedRecords(topic, 7)...)

	status, metrics, err := httpGet("http://" + server.httpAddr + "/metrics")
	if err != nil || status != 200 {
		t.Fatalf("/metrics: status %d err %v", status, err)
	}
	for _, name := range []string{"cairn_topics", "cairn_partition_high_watermark"} {
		if !regexp.MustCompile(`(?m)^# TYPE ` + name + ` `).MatchString(metrics) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	highWatermark := regexp.MustCompile(fmt.Sprintf(`(?m)^cairn_partition_high_watermark\{[^}]*topic="%s"[^}]*\} 7$`, topic))
	if !highWatermark.MatchString(metrics) {
		t.Errorf("/metrics does not report high watermark 7 for %s:\n%s", topic, grepLines(metrics, "cairn_partition_high_watermark"))
	}
	if cairnMetrics := grepLines(metrics, "cairn_"); strings.Count(cairnMetrics, "\n") < 5 {
		t.Errorf("/metrics has few cairn_ lines:\n%s", cairnMetrics)
	}
}

// grepLines returns the lines of text containing substring.
func grepLines(text, substring string) string {
	var out strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, substring) {
			out.WriteString(line)
		}
	}
	return out.String()
}
