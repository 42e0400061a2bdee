package batch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests build batches with franz-go, a widely used Kafka client,
// instead of this package's encoder, so a shared misunderstanding of the
// format between Encode and Validate cannot hide.

func kmsgRecords() []kmsg.Record {
	var out []kmsg.Record
	for i, r := range sampleRecords() {
		kr := kmsg.Record{
			TimestampDelta64: r.TimestampMs - 1_700_000_000_000,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, kr)
	}
	return out
}

// kmsgBatch lays out a batch the way a client does: records appended by
// kmsg, the section compressed by compress, the header by
// kmsg.RecordBatch, and the CRC32C computed here.
func kmsgBatch(records []kmsg.Record, codec Codec, compress func([]byte) []byte) []byte {
	var section []byte
	for _, r := range records {
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the body after a one-byte zero length
		section = r.AppendTo(section)
	}
	compressed := compress(section)
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		Length:               int32(49 + len(compressed)),
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(codec),
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       1_700_000_000_000,
		MaxTimestamp:         1_700_000_001_000,
		ProducerID:           12,
		ProducerEpoch:        0,
		FirstSequence:        0,
		NumRecords:           int32(len(records)),
		Records:              compressed,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

var kgoCodecs = map[Codec]kgo.CompressionCodec{
	None:   kgo.NoCompression(),
	Gzip:   kgo.GzipCompression(),
	Snappy: kgo.SnappyCompression(),
	LZ4:    kgo.Lz4Compression(),
	Zstd:   kgo.ZstdCompression(),
}

func kgoCompress(codec Codec) func([]byte) []byte {
	compressor, err := kgo.DefaultCompressor(kgoCodecs[codec])
	if err != nil {
		panic(err)
	}
	return func(section []byte) []byte {
		if compressor == nil { // franz-go's representation of no compression
			return section
		}
		out, used := compressor.Compress(new(bytes.Buffer), section)
		if used != kgo.CompressionCodecType(codec) {
			panic(fmt.Sprintf("franz-go compressed with %v, want %v", used, codec))
		}
		return bytes.Clone(out)
	}
}

// xerialFrame frames a section as the Java client's snappy stream does,
// in blocks of chunkBytes.
func xerialFrame(chunkBytes int) func([]byte) []byte {
	return func(section []byte) []byte {
		out := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
		for len(section) > 0 {
			n := min(chunkBytes, len(section))
			block := snappy.Encode(nil, section[:n])
			out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
			out = append(out, block...)
			section = section[n:]
		}
		return out
	}
}

// TestClientBatchesValidate proves batches as franz-go produces them, for
// every codec, and snappy in the Java client's xerial framing, validate
// and decode to the records the client encoded.
func TestClientBatchesValidate(t *testing.T) {
	type variant struct {
		name     string
		codec    Codec
		compress func([]byte) []byte
	}
	variants := []variant{
		{"snappy xerial 32KiB blocks", Snappy, xerialFrame(32 << 10)},
		{"snappy xerial one block", Snappy, xerialFrame(1 << 30)},
	}
	for _, codec := range allCodecs {
		variants = append(variants, variant{"franz-go " + codec.String(), codec, kgoCompress(codec)})
	}
	for _, tt := range variants {
		t.Run(tt.name, func(t *testing.T) {
			whole := kmsgBatch(kmsgRecords(), tt.codec, tt.compress)
			h, records, err := Validate(whole, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if h.Codec() != tt.codec || h.ProducerID != 12 || h.NumRecords != 6 {
				t.Fatalf("header %+v", h)
			}
			sameRecords(t, records, sampleRecords())
		})
	}
}

// TestFranzGoReadsOurCompression proves a Kafka client can decompress what
// Compress produces, for every codec.
func TestFranzGoReadsOurCompression(t *testing.T) {
	section := bytes.Repeat([]byte("event payload, somewhat compressible; "), 5000)
	decompressor := kgo.DefaultDecompressor()
	for _, codec := range allCodecs {
		compressed, err := Compress(codec, section)
		if err != nil {
			t.Fatalf("%v: %v", codec, err)
		}
		got, err := decompressor.Decompress(compressed, kgo.CompressionCodecType(codec))
		if err != nil {
			t.Fatalf("%v: franz-go: %v", codec, err)
		}
		if !bytes.Equal(got, section) {
			t.Fatalf("%v: franz-go decompressed %d bytes, want %d", codec, len(got), len(section))
		}
	}
}

// TestDecodeAgreesWithKmsg proves this package's record decoder and kmsg's
// read the same fields from a batch Encode wrote.
func TestDecodeAgreesWithKmsg(t *testing.T) {
	whole := Build(sampleRecords(), None)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(whole); err != nil {
		t.Fatal(err)
	}
	want := kmsgDecode(t, rb.Records, int(rb.NumRecords))
	_, got, err := Validate(whole, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, _ := Next(whole)
	compareWithKmsg(t, h, got, want)
}

// kmsgDecode decodes a records section with kmsg alone.
func kmsgDecode(t testing.TB, section []byte, count int) []kmsg.Record {
	t.Helper()
	var out []kmsg.Record
	for range count {
		var r kmsg.Record
		if err := r.ReadFrom(section); err != nil {
			t.Fatalf("kmsg: record %d: %v", len(out), err)
		}
		_, n := binary.Varint(section)
		section = section[n+int(r.Length):]
		out = append(out, r)
	}
	if len(section) != 0 {
		t.Fatalf("kmsg: %d bytes left after %d records", len(section), count)
	}
	return out
}

// compareWithKmsg checks records decoded here against kmsg's decoding of
// the same section of the batch with header h.
func compareWithKmsg(t testing.TB, h Header, got []Record, want []kmsg.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, kmsg decoded %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		timestamp := h.FirstTimestamp + w.TimestampDelta64
		if h.LogAppendTime() {
			timestamp = h.MaxTimestamp
		}
		if g.Offset != h.BaseOffset+int64(w.OffsetDelta) || g.TimestampMs != timestamp ||
			!sameNullable(g.Key, w.Key) || !sameNullable(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %+v, kmsg decoded %+v", i, g, w)
		}
		for j, wh := range w.Headers {
			if g.Headers[j].Key != wh.Key || !sameNullable(g.Headers[j].Value, wh.Value) {
				t.Fatalf("record %d header %d: %+v, kmsg decoded %+v", i, j, g.Headers[j], wh)
			}
		}
	}
}
