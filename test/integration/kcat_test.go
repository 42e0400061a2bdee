package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const kcatWaitMax = 30 * time.Second

// kcat runs kcat against the server with stdin and returns its stdout.
func kcat(t *testing.T, kcatPath, addr, stdin string, args ...string) string {
	t.Helper()
	return runTool(t, kcatWaitMax, stdin, nil, kcatPath, append([]string{"-b", addr}, args...)...)
}

// TestNewcomerPath proves the first thing a new user tries works: kcat
// produces a keyed record to a topic nobody created, kcat reads it back, and
// the record is still there after the server is killed with SIGKILL and
// restarted.
func TestNewcomerPath(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")

	kcat(t, kcatPath, server.kafkaAddr, "placed\n", "-t", "orders", "-P", "-k", "order-1")
	consume := func() string {
		return kcat(t, kcatPath, server.kafkaAddr, "", "-t", "orders", "-C", "-e", "-o", "beginning", "-f", `%k=%s\n`)
	}
	if got := consume(); got != "order-1=placed\n" {
		t.Fatalf("consume after produce: got %q, want %q", got, "order-1=placed\n")
	}

	server.Kill()
	server.Restart()
	if got := consume(); got != "order-1=placed\n" {
		t.Fatalf("consume after SIGKILL and restart: got %q, want %q", got, "order-1=placed\n")
	}
}

// TestKcatRoundTrips proves records produced by librdkafka (through kcat)
// with keys, headers and every codec come back byte for byte at contiguous
// offsets, that the batches are stored with the codec they were sent in, and
// that kcat's metadata listing shows the topic.
func TestKcatRoundTrips(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")
	const recordsPerCodec = 200

	for _, codec := range []struct {
		name string
		id   int8
	}{{"none", codecNone}, {"gzip", codecGzip}, {"snappy", codecSnappy}, {"lz4", codecLz4}, {"zstd", codecZstd}} {
		t.Run(codec.name, func(t *testing.T) {
			topic := "kcat-" + codec.name
			var input, want strings.Builder
			for i := range recordsPerCodec {
				// Repetitive values so every codec actually shrinks them.
				value := fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%50))
				fmt.Fprintf(&input, "key-%d:%s\n", i, value)
				fmt.Fprintf(&want, "o=%d k=key-%d v=%s h=source=kcat,codec=%s\n", i, i, value, codec.name)
			}
			kcat(t, kcatPath, server.kafkaAddr, input.String(), "-t", topic, "-P", "-K:",
				"-z", codec.name, "-H", "source=kcat", "-H", "codec="+codec.name,
				"-X", "linger.ms=50") // let records share batches so compression applies
			got := kcat(t, kcatPath, server.kafkaAddr, "", "-t", topic, "-C", "-e", "-o", "beginning",
				"-f", `o=%o k=%k v=%s h=%h\n`)
			if got != want.String() {
				t.Fatalf("consumed records differ from produced ones\ngot:\n%s\nwant:\n%s", head(got, 10), head(want.String(), 10))
			}
			codecs := storedCodecs(t, server.kafkaAddr, topic, 0)
			if len(codecs) == 0 {
				t.Fatalf("raw fetch returned no batches")
			}
			for i, id := range codecs {
				if id != codec.id {
					// librdkafka sends uncompressed, silently, when it
					// thinks the broker cannot take the codec.
					t.Fatalf("batch %d stored with codec %d, want %d (%s); all: %v. librdkafka as packaged with kcat "+
						"compresses with gzip, snappy or lz4 only if ApiVersions lists Produce v0 (as Kafka 4 "+
						"still does, KAFKA-18659), and lz4 only if it also lists FindCoordinator v0",
						i, id, codec.id, codec.name, codecs)
				}
			}
		})
	}

	metadata := kcat(t, kcatPath, server.kafkaAddr, "", "-L")
	for _, want := range []string{"1 brokers:", "topic \"kcat-zstd\" with 1 partitions:", "partition 0, leader"} {
		if !strings.Contains(metadata, want) {
			t.Errorf("kcat -L output lacks %q:\n%s", want, metadata)
		}
	}
}

// head returns the first n lines of text, for readable failure messages.
func head(text string, n int) string {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) <= n {
		return text
	}
	return strings.Join(lines[:n], "") + fmt.Sprintf("... (%d more lines)\n", len(lines)-n)
}
