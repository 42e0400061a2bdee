package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/batch"
)

// hostileRSSHeadroomBytes is how far above its baseline the server's peak
// RSS may go while hostile clients do their worst: a request may cost memory
// for the bytes it sends, never for the sizes it claims.
const hostileRSSHeadroomBytes = 256 << 20

// peakRSS reads the server process's high-water resident set (VmHWM).
func peakRSS(t *testing.T, server *cairnServer) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", server.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read server status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse VmHWM %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// bombBatch is a RecordBatch with a valid CRC whose records blob inflates to
// zerosBytes of zeros under codec: far past the broker's decompression cap.
func bombBatch(t *testing.T, codec batch.Codec, zerosBytes int) []byte {
	t.Helper()
	blob, err := batch.Compress(codec, make([]byte, zerosBytes))
	if err != nil {
		t.Fatalf("compress %s bomb: %v", codec, err)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: int16(codec), LastOffsetDelta: 0,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: blob,
	}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func produceFrame(t *testing.T, topic string, records []byte) []byte {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return requestFrame(apiKeyProduce, 7, 77, req.AppendTo(nil))
}

// TestHostileClients proves the server survives clients that lie about
// sizes, send decompression bombs, trickle bytes, hoard idle connections or
// pipeline requests: each bad case ends in an error or a closed connection,
// a well-behaved client keeps being served, and peak RSS stays within the
// baseline plus hostileRSSHeadroomBytes.
func TestHostileClients(t *testing.T) {
	server := startCairn(t, "")
	hostileSuite(t, server, func(t *testing.T) net.Conn { return dialRaw(t, server.kafkaAddr) })
}

// hostileSuite runs every hostile case on connections dial makes (to a
// plaintext or an SSL listener), with the canary on the server's
// plaintext listener.
func hostileSuite(t *testing.T, server *cairnServer, dial func(t *testing.T) net.Conn) {
	canary := newCanary(t, server)
	canary.check(t, "before hostile clients")
	bombs := "bombs"
	createTopic(t, server.kafkaAddr, bombs, 1, map[string]*string{"max.message.bytes": ptr(strconv.Itoa(32 << 20))})
	baseline := peakRSS(t, server)
	passed := 0

	t.Run("2 GiB length prefix", func(t *testing.T) {
		conn := dial(t)
		sendRaw(conn, []byte{0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0})
		requireClosed(t, conn, "2 GiB prefix")
		passed++
	})
	t.Run("array counts of 2^31 in tiny requests", func(t *testing.T) {
		metadataTopics := binary.BigEndian.AppendUint32(nil, 0x7fffffff)
		produceTopics := append([]byte{0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88}, 0x7f, 0xff, 0xff, 0xff)
		for name, frame := range map[string][]byte{
			"metadata v1": requestFrame(3, 1, 5, metadataTopics),
			"produce v7":  requestFrame(apiKeyProduce, 7, 6, produceTopics),
		} {
			conn := dial(t)
			sendRaw(conn, frame)
			requireClosed(t, conn, name)
		}
		passed++
	})
	for _, codec := range []batch.Codec{batch.Gzip, batch.Snappy, batch.LZ4, batch.Zstd} {
		t.Run("decompression bomb "+codec.String(), func(t *testing.T) {
			conn := dial(t)
			sendRaw(conn, produceFrame(t, bombs, bombBatch(t, codec, 128<<20)))
			_, body := readResponse(t, conn)
			resp := kmsg.NewPtrProduceResponse()
			resp.SetVersion(7)
			if err := resp.ReadFrom(body); err != nil {
				t.Fatalf("decode produce response: %v", err)
			}
			code := resp.Topics[0].Partitions[0].ErrorCode
			if code != kerr.InvalidRecord.Code && code != kerr.CorruptMessage.Code {
				t.Fatalf("bomb answered with code %d, want INVALID_RECORD or CORRUPT_MESSAGE", code)
			}
			passed++
			t.Logf("peak RSS after the %s bomb: %d MiB", codec, peakRSS(t, server)>>20)
		})
	}
	t.Run("unknown API key and version", func(t *testing.T) {
		for _, frame := range [][]byte{requestFrame(999, 0, 1, nil), requestFrame(3, 99, 2, nil)} {
			conn := dial(t)
			sendRaw(conn, frame)
			requireClosed(t, conn, "unknown key/version")
		}
		passed++
	})
	t.Run("request trickled one byte at a time", func(t *testing.T) {
		conn := dial(t)
		frame := requestFrame(18, 0, 41, nil)
		for _, b := range frame {
			sendRaw(conn, []byte{b})
			time.Sleep(20 * time.Millisecond)
		}
		if corr, _ := readResponse(t, conn); corr != 41 {
			t.Fatalf("trickled request answered with correlation id %d", corr)
		}
		passed++
	})
	t.Run("truncated frames", func(t *testing.T) {
		for _, cut := range []int{2, 6, 12} {
			conn := dial(t)
			sendRaw(conn, requestFrame(18, 0, 1, nil)[:cut])
			_ = conn.(interface{ CloseWrite() error }).CloseWrite()
			requireClosed(t, conn, fmt.Sprintf("frame cut at %d bytes", cut))
		}
		passed++
	})
	t.Run("pipelined requests answered in order", func(t *testing.T) {
		conn := dial(t)
		var all bytes.Buffer
		const requests = 64
		for i := range requests {
			if i%2 == 0 {
				all.Write(requestFrame(18, 0, int32(i), nil))
			} else {
				all.Write(requestFrame(3, 1, int32(i), binary.BigEndian.AppendUint32(nil, 0)))
			}
		}
		sendRaw(conn, all.Bytes())
		for i := range requests {
			if corr, _ := readResponse(t, conn); corr != int32(i) {
				t.Fatalf("response %d carries correlation id %d", i, corr)
			}
		}
		passed++
	})
	t.Run("thousands of idle connections", func(t *testing.T) {
		const idle = 2000
		conns := make([]net.Conn, 0, idle)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range idle {
			conns = append(conns, dial(t))
		}
		canary.check(t, fmt.Sprintf("with %d idle connections open", idle))
		passed++
	})
	canary.check(t, "after hostile clients")
	peak := peakRSS(t, server)
	t.Logf("hostile cases passed: %d; server peak RSS %d MiB (baseline %d MiB, limit +%d MiB)",
		passed, peak>>20, baseline>>20, hostileRSSHeadroomBytes>>20)
	if peak > baseline+hostileRSSHeadroomBytes {
		t.Fatalf("peak RSS %d MiB exceeds baseline %d MiB + %d MiB", peak>>20, baseline>>20, hostileRSSHeadroomBytes>>20)
	}
}

func ptr(s string) *string { return &s }
