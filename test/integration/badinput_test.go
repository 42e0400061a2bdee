package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	rawWaitMax      = 5 * time.Second
	badInputBytes   = 1 << 20 // --request-bytes-max for the bad-input server
	apiKeyProduce   = 0
	apiKeyMetadata  = 3
	apiKeyVersions  = 18
	apiKeyUnknown   = 32000
	clientIDRaw     = "raw"
	correlationIDOK = 7
)

// requestFrame builds a request frame by hand: size, then a v1 request
// header (API key, version, correlation id, client id), then body. Flexible
// versions need a tag buffer after the client id; callers add it to body.
func requestFrame(apiKey, version int16, correlationID int32, body []byte) []byte {
	var frame []byte
	frame = binary.BigEndian.AppendUint32(frame, 0) // size, filled below
	frame = binary.BigEndian.AppendUint16(frame, uint16(apiKey))
	frame = binary.BigEndian.AppendUint16(frame, uint16(version))
	frame = binary.BigEndian.AppendUint32(frame, uint32(correlationID))
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientIDRaw)))
	frame = append(frame, clientIDRaw...)
	frame = append(frame, body...)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	return frame
}

// dialRaw opens a plain TCP connection to the Kafka port.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, rawWaitMax)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sendRaw writes data, ignoring errors after the server may already have
// closed the connection (a reset during a large write is a valid refusal).
func sendRaw(conn net.Conn, data []byte) {
	_ = conn.SetWriteDeadline(time.Now().Add(rawWaitMax))
	_, _ = conn.Write(data)
}

// requireClosed checks that the server closes the connection (EOF or reset)
// within rawWaitMax without answering.
func requireClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(rawWaitMax))
	data, err := io.ReadAll(conn)
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		t.Fatalf("%s: connection still open after %s (read %d bytes)", what, rawWaitMax, len(data))
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("%s: read error %v, want EOF or connection reset", what, err)
	case len(data) > 0:
		t.Fatalf("%s: server answered %d bytes (%x), want the connection closed", what, len(data), data[:min(len(data), 32)])
	}
}

// readResponse reads one response frame and returns its correlation id and
// body.
func readResponse(t *testing.T, conn net.Conn) (int32, []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(rawWaitMax))
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("read response size: %v", err)
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if len(frame) < 4 || len(frame) > 1<<20 {
		t.Fatalf("response frame of %d bytes", len(frame))
	}
	if _, err := io.ReadFull(conn, frame); err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return int32(binary.BigEndian.Uint32(frame)), frame[4:]
}

// TestBadInput proves malformed and hostile requests close only their own
// connection with the documented answer, and that after each one the process
// is alive and a well-behaved client still produces and consumes.
func TestBadInput(t *testing.T) {
	server := startCairn(t, "", "--request-bytes-max", fmt.Sprint(badInputBytes))
	canary := newCanary(t, server)
	canary.check(t, "before any bad input")

	// The hand-built frames are well formed: a valid one gets an answer.
	t.Run("well-formed raw ApiVersions", func(t *testing.T) {
		requireApiVersionsAnswer(t, server, 0, 0)
	})
	for _, tc := range closingFrames() {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialRaw(t, server.kafkaAddr)
			sendRaw(conn, tc.data)
			if tc.halfClose {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatalf("half-close: %v", err)
				}
			}
			requireClosed(t, conn, tc.name)
			canary.check(t, "after "+tc.name)
		})
	}
	t.Run("ApiVersions v99 answers UNSUPPORTED_VERSION", func(t *testing.T) {
		// Answered, not closed, so a newer client can negotiate down.
		requireApiVersionsAnswer(t, server, 99, kerr.UnsupportedVersion.Code)
		canary.check(t, "after ApiVersions v99")
	})
	t.Run("Produce v2 is refused per partition", func(t *testing.T) {
		requireOldProduceRefused(t, server)
		canary.check(t, "after Produce v2")
	})
	t.Run("invalid topic names in Metadata", func(t *testing.T) {
		requireInvalidNamesInMetadata(t, canary.client)
		canary.check(t, "after invalid names in Metadata")
	})
	t.Run("invalid topic names in CreateTopics", func(t *testing.T) {
		requireInvalidNamesInCreateTopics(t, canary.client)
		canary.check(t, "after invalid names in CreateTopics")
	})
	t.Run("record near --request-bytes-max", func(t *testing.T) {
		// A request just under the limit is served: the limit refuses only
		// what exceeds it.
		record := &kgo.Record{Topic: canaryTopic, Value: bytes.Repeat([]byte("v"), badInputBytes-64<<10)}
		produceSync(t, canary.client, record)
		canary.check(t, "after a near-limit record")
	})
	server.requireAlive(t)
}

// badFrame is input after which the server must close the connection
// without answering; halfClose ends the client's side after sending, so the
// server sees EOF in the middle of a frame.
type badFrame struct {
	name      string
	data      []byte
	halfClose bool
}

func closingFrames() []badFrame {
	return []badFrame{
		{name: "HTTP request on the Kafka port", data: []byte("GET / HTTP/1.1\r\nHost: cairn\r\n\r\n")},
		{name: "garbage after a valid size", data: append(binary.BigEndian.AppendUint32(nil, 64), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16)...)},
		{name: "length prefix of 2 GiB (negative as int32)", data: binary.BigEndian.AppendUint32(nil, 1<<31)},
		{name: "length prefix of 2 GiB - 1", data: append(binary.BigEndian.AppendUint32(nil, 1<<31-1), make([]byte, 1024)...)},
		{name: "length prefix below a header", data: append(binary.BigEndian.AppendUint32(nil, 4), 0, 0, 0, 0)},
		{name: "unknown API key", data: requestFrame(apiKeyUnknown, 0, 1, nil)},
		{name: "Produce v99 (above the served range)", data: requestFrame(apiKeyProduce, 99, 1, make([]byte, 32))},
		// 0x7f7f as the transactional id's length runs past the frame.
		{name: "Produce v7 with a garbage body", data: requestFrame(apiKeyProduce, 7, 1, bytes.Repeat([]byte{0x7f}, 40))},
		// One topic name of length 3 with one byte present.
		{name: "Metadata v1 with a truncated body", data: requestFrame(apiKeyMetadata, 1, 1, []byte{0, 0, 0, 5, 0, 3, 'a'})},
		{name: "request over --request-bytes-max", data: oversizedProduce()},
		{name: "half a length prefix then EOF", data: []byte{0, 0}, halfClose: true},
		{name: "frame cut short then EOF", data: requestFrame(apiKeyMetadata, 1, 1, []byte{0, 0, 0, 0})[:10], halfClose: true},
	}
}

// requireApiVersionsAnswer sends a raw ApiVersions request and checks the
// answer's correlation id and error code (the first field of every version).
func requireApiVersionsAnswer(t *testing.T, server *cairnServer, version int16, wantCode int16) {
	t.Helper()
	conn := dialRaw(t, server.kafkaAddr)
	sendRaw(conn, requestFrame(apiKeyVersions, version, correlationIDOK, nil))
	correlationID, body := readResponse(t, conn)
	if correlationID != correlationIDOK || len(body) < 2 || int16(binary.BigEndian.Uint16(body)) != wantCode {
		t.Fatalf("ApiVersions v%d: correlation id %d, body %x; want %d and error code %d",
			version, correlationID, body, correlationIDOK, wantCode)
	}
}

// requireOldProduceRefused sends Produce v2 (message format v0/v1, which
// Kafka 4 no longer accepts). Like Kafka 4, the server lists v0-v2 in
// ApiVersions, because librdkafka compresses only when it sees v0 there, but
// answers every partition with UNSUPPORTED_VERSION.
func requireOldProduceRefused(t *testing.T, server *cairnServer) {
	t.Helper()
	request := kmsg.NewPtrProduceRequest()
	request.Version = 2
	request.Acks = 1
	request.TimeoutMillis = 5000
	requestTopic := kmsg.NewProduceRequestTopic()
	requestTopic.Topic = canaryTopic
	requestPartition := kmsg.NewProduceRequestTopicPartition()
	requestPartition.Partition = 0
	requestPartition.Records = []byte{}
	requestTopic.Partitions = append(requestTopic.Partitions, requestPartition)
	request.Topics = append(request.Topics, requestTopic)

	conn := dialRaw(t, server.kafkaAddr)
	sendRaw(conn, requestFrame(apiKeyProduce, 2, correlationIDOK, request.AppendTo(nil)))
	correlationID, body := readResponse(t, conn)
	response := kmsg.NewPtrProduceResponse()
	response.Version = 2
	if err := response.ReadFrom(body); err != nil || correlationID != correlationIDOK {
		t.Fatalf("Produce v2 response: correlation id %d (want %d), decode error %v", correlationID, correlationIDOK, err)
	}
	if len(response.Topics) != 1 || len(response.Topics[0].Partitions) != 1 ||
		response.Topics[0].Partitions[0].ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("Produce v2: answered %+v, want one partition with UNSUPPORTED_VERSION", response.Topics)
	}
}

// requireInvalidNamesInMetadata asks for each invalid name with
// auto-creation allowed and expects INVALID_TOPIC_EXCEPTION, not a topic.
func requireInvalidNamesInMetadata(t *testing.T, client *kgo.Client) {
	t.Helper()
	for _, name := range invalidTopicNames() {
		request := kmsg.NewPtrMetadataRequest()
		request.AllowAutoTopicCreation = true
		requestTopic := kmsg.NewMetadataRequestTopic()
		requestTopic.Topic = kmsg.StringPtr(name)
		request.Topics = append(request.Topics, requestTopic)
		response, err := request.RequestWith(testContext(t), client)
		if err != nil {
			t.Fatalf("metadata for %q: %v", abbreviate(name), err)
		}
		if len(response.Topics) != 1 || response.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
			t.Errorf("metadata for %q: topics %+v, want one with INVALID_TOPIC_EXCEPTION", abbreviate(name), response.Topics)
		}
	}
}

// requireInvalidNamesInCreateTopics creates the invalid names and one valid
// one in a single request: each invalid one is refused on its own, and the
// valid one is created.
func requireInvalidNamesInCreateTopics(t *testing.T, client *kgo.Client) {
	t.Helper()
	const valid = "valid-next-to-invalid"
	request := kmsg.NewPtrCreateTopicsRequest()
	request.TimeoutMillis = 10000
	names := append(invalidTopicNames(), "", valid)
	for _, name := range names {
		requestTopic := kmsg.NewCreateTopicsRequestTopic()
		requestTopic.Topic = name
		requestTopic.NumPartitions = 1
		requestTopic.ReplicationFactor = -1
		request.Topics = append(request.Topics, requestTopic)
	}
	response, err := request.RequestWith(testContext(t), client)
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	codes := make(map[string]int16)
	for _, answered := range response.Topics {
		codes[answered.Topic] = answered.ErrorCode
	}
	for _, name := range names {
		want := kerr.InvalidTopicException.Code
		if name == valid {
			want = 0
		}
		if code, found := codes[name]; !found || code != want {
			t.Errorf("create %q: answered %t, error code %d, want %d", abbreviate(name), found, code, want)
		}
	}
}

// invalidTopicNames are names Kafka refuses: characters outside
// [a-zA-Z0-9._-], the reserved "." and "..", and more than 249 bytes.
func invalidTopicNames() []string {
	return []string{"bad name!", "orders/2026", ".", "..", strings.Repeat("x", 250)}
}

func abbreviate(name string) string {
	if len(name) > 20 {
		return fmt.Sprintf("%s... (%d bytes)", name[:20], len(name))
	}
	return name
}

// oversizedProduce is a complete Produce v7 frame of twice
// --request-bytes-max: header, then zero bytes. The server must refuse it on
// the size prefix, before reading the body.
func oversizedProduce() []byte {
	return requestFrame(apiKeyProduce, 7, 1, make([]byte, 2*badInputBytes))
}

const canaryTopic = "canary"

// canary is a well-behaved franz-go client that proves the server still
// serves: each check produces one record and reads it back at its offset.
type canary struct {
	server *cairnServer
	client *kgo.Client
	count  int
}

func newCanary(t *testing.T, server *cairnServer) *canary {
	t.Helper()
	createTopic(t, server.kafkaAddr, canaryTopic, 1, nil)
	client := newKgo(t, server.kafkaAddr, kgo.DefaultProduceTopic(canaryTopic), kgo.ProducerBatchMaxBytes(badInputBytes))
	return &canary{server: server, client: client}
}

func (c *canary) check(t *testing.T, when string) {
	t.Helper()
	c.server.requireAlive(t)
	c.count++
	value := fmt.Sprintf("canary %d %s", c.count, when)
	record := &kgo.Record{Value: []byte(value)}
	if err := c.client.ProduceSync(testContext(t), record).FirstErr(); err != nil {
		t.Fatalf("%s: well-behaved produce failed: %v", when, err)
	}
	got := readFrom(t, c.server.kafkaAddr, canaryTopic, map[int32]int64{0: record.Offset})
	if len(got) == 0 || string(got[0].Value) != value {
		t.Fatalf("%s: reading back offset %d did not return %q", when, record.Offset, value)
	}
	if status, body, err := c.server.healthz(); err != nil || status != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("%s: /healthz status %d body %q err %v", when, status, body, err)
	}
}
