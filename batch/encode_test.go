package batch

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

var allCodecs = []Codec{None, Gzip, Snappy, LZ4, Zstd}

// sampleRecords covers the shapes a record can take: null and empty keys
// and values, tombstones, headers with null and empty values, repeated
// header keys, timestamps before and after the first, large values.
func sampleRecords() []Record {
	return []Record{
		{Offset: 0, TimestampMs: 1_700_000_000_000, Key: []byte("order-1"), Value: []byte(`{"total":12}`)},
		{Offset: 1, TimestampMs: 1_700_000_000_500, Key: nil, Value: []byte("no key")},
		{Offset: 2, TimestampMs: 1_699_999_999_000, Key: []byte("order-1"), Value: nil}, // tombstone, earlier time
		{Offset: 3, TimestampMs: 1_700_000_001_000, Key: []byte{}, Value: []byte{}},
		{Offset: 4, TimestampMs: 1_700_000_000_000, Key: []byte("h"), Value: []byte("v"), Headers: []RecordHeader{
			{Key: "ce_type", Value: []byte("order.created")},
			{Key: "trace", Value: nil},
			{Key: "", Value: []byte{}},
			{Key: "trace", Value: []byte("again")},
		}},
		{Offset: 5, TimestampMs: 1_700_000_000_001, Key: []byte("big"), Value: bytes.Repeat([]byte("0123456789abcdef"), 10_000)},
	}
}

// sameRecords compares records the way a consumer sees them: nil and empty
// are different (null versus empty), header order matters.
func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.TimestampMs != w.TimestampMs {
			t.Errorf("record %d: offset %d ts %d, want offset %d ts %d", i, g.Offset, g.TimestampMs, w.Offset, w.TimestampMs)
		}
		if !sameNullable(g.Key, w.Key) || !sameNullable(g.Value, w.Value) {
			t.Errorf("record %d: key %q (nil %v) value of %d bytes (nil %v), want key %q (nil %v) value of %d bytes (nil %v)",
				i, g.Key, g.Key == nil, len(g.Value), g.Value == nil, w.Key, w.Key == nil, len(w.Value), w.Value == nil)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Errorf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
			continue
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameNullable(g.Headers[j].Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func sameNullable(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// TestEncodeValidateRoundTrip proves that every codec carries every record
// shape through Encode and back through Validate and Records unchanged,
// with the header fields taken from the template.
func TestEncodeValidateRoundTrip(t *testing.T) {
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			records := sampleRecords()
			for i := range records {
				records[i].Offset += 1000
			}
			tmpl := Header{BaseOffset: 1000, PartitionLeaderEpoch: 3, ProducerID: 77, ProducerEpoch: 2, BaseSequence: 40,
				Attributes: transactionalBit | int16(Zstd)} // codec bits in tmpl are ignored
			whole, err := Encode(tmpl, int32(len(records)-1), records, codec)
			if err != nil {
				t.Fatal(err)
			}
			h, got, err := Validate(whole, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, records)
			want := Header{BaseOffset: 1000, BatchLength: int32(len(whole) - 12), PartitionLeaderEpoch: 3, Magic: 2,
				CRC: h.CRC, Attributes: transactionalBit | int16(codec), LastOffsetDelta: 5,
				FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_001_000,
				ProducerID: 77, ProducerEpoch: 2, BaseSequence: 40, NumRecords: 6}
			if h != want {
				t.Errorf("header %+v\nwant   %+v", h, want)
			}
			stored, err := Records(whole, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, stored, records)
		})
	}
}

// TestEncodeCompacted proves Encode keeps a compacted batch's base offset,
// base sequence and last offset when its first and last records were
// removed (so the producer's last sequence reads the same), that Records
// reads the gaps back, and that Validate, which checks what producers send,
// refuses the gaps.
func TestEncodeCompacted(t *testing.T) {
	original := sampleRecords() // offsets 0..5
	kept := []Record{original[1], original[3]}
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			tmpl := Header{BaseOffset: 0, LastOffsetDelta: 5, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 40}
			whole, err := Encode(tmpl, tmpl.LastOffsetDelta, kept, codec)
			if err != nil {
				t.Fatal(err)
			}
			h, _, _, err := Next(whole)
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset != 0 || h.LastOffsetDelta != 5 || h.BaseSequence != 40 || h.NumRecords != 2 {
				t.Fatalf("base %d last offset delta %d base sequence %d records %d, want 0 5 40 2",
					h.BaseOffset, h.LastOffsetDelta, h.BaseSequence, h.NumRecords)
			}
			got, err := Records(whole, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, kept)
			if _, _, err := Validate(whole, DefaultLimits()); !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("Validate of a batch with offset gaps: err=%v, want ErrInvalidRecord", err)
			}
		})
	}
}

// TestEncodeEmpty proves compaction can leave an empty batch that keeps its
// offsets and producer fields, with codec none and no record bytes as Kafka
// writes it, which Records reads as no records and Validate refuses (a
// producer must send at least one record).
func TestEncodeEmpty(t *testing.T) {
	tmpl := Header{BaseOffset: 50, LastOffsetDelta: 9, FirstTimestamp: 10, MaxTimestamp: 20, ProducerID: 4, ProducerEpoch: 1, BaseSequence: 7}
	whole, err := Encode(tmpl, tmpl.LastOffsetDelta, nil, Zstd)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, err := Next(whole)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 50 || h.NextOffset() != 60 || h.NumRecords != 0 || h.MaxTimestamp != 20 || h.ProducerID != 4 || h.BaseSequence != 7 ||
		h.Codec() != None || len(whole) != HeaderBytes {
		t.Fatalf("empty batch header %+v", h)
	}
	if got, err := Records(whole, DefaultLimits()); err != nil || len(got) != 0 {
		t.Fatalf("Records: %d records, err=%v; want none", len(got), err)
	}
	if _, _, err := Validate(whole, DefaultLimits()); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Validate: err=%v, want ErrInvalidRecord", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	two := []Record{{Offset: 5}, {Offset: 6}}
	tests := []struct {
		name            string
		records         []Record
		lastOffsetDelta int32
		codec           Codec
		want            error
	}{
		{"unknown codec", two, 1, 5, ErrUnsupportedCodec},
		{"negative codec", two, 1, -1, ErrUnsupportedCodec},
		{"repeated offset", []Record{{Offset: 5}, {Offset: 5}}, 1, None, ErrInvalidRecord},
		{"decreasing offset", []Record{{Offset: 5}, {Offset: 4}}, 1, None, ErrInvalidRecord},
		{"delta beyond int32", []Record{{Offset: 5}, {Offset: 5 + 1<<31}}, 1, None, ErrInvalidRecord},
		{"last offset delta before last record", two, 0, None, ErrInvalidRecord},
		{"record before the base offset", []Record{{Offset: 4}}, 6, None, ErrInvalidRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(Header{BaseOffset: 5}, tt.lastOffsetDelta, tt.records, tt.codec); !errors.Is(err, tt.want) {
				t.Fatalf("err=%v, want %v", err, tt.want)
			}
		})
	}
}

// TestBuild proves the test builder numbers records from 0 like a producer
// and marks the batch as coming from no producer.
func TestBuild(t *testing.T) {
	records := []Record{{Offset: 99, Value: []byte("a")}, {Offset: 7, Value: []byte("b")}}
	whole := Build(records, Gzip)
	h, got, err := Validate(whole, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 0 || h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.Codec() != Gzip {
		t.Fatalf("header %+v", h)
	}
	if got[0].Offset != 0 || got[1].Offset != 1 || string(got[1].Value) != "b" {
		t.Fatalf("records %+v", got)
	}
	if records[0].Offset != 99 {
		t.Fatal("Build modified its input")
	}
}

// TestSetLogAppendTime proves the rewrite keeps the CRC valid and makes the
// log's time every record's timestamp, for every codec.
func TestSetLogAppendTime(t *testing.T) {
	const appendTimeMs = 1_800_000_000_000
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			whole := Build(sampleRecords(), codec)
			SetLogAppendTime(whole, appendTimeMs)
			h, records, err := Validate(whole, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if !h.LogAppendTime() || h.MaxTimestamp != appendTimeMs || h.FirstTimestamp != appendTimeMs || h.Codec() != codec {
				t.Fatalf("header %+v", h)
			}
			for i, r := range records {
				if r.TimestampMs != appendTimeMs {
					t.Errorf("record %d timestamp %d, want %d", i, r.TimestampMs, appendTimeMs)
				}
			}
			// Re-encoding (as compaction does) keeps the append time.
			again, err := Encode(h, h.LastOffsetDelta, records, codec)
			if err != nil {
				t.Fatal(err)
			}
			h2, records2, err := Validate(again, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if !h2.LogAppendTime() || h2.MaxTimestamp != appendTimeMs {
				t.Fatalf("re-encoded header %+v", h2)
			}
			if !reflect.DeepEqual(timestamps(records2), timestamps(records)) {
				t.Fatalf("re-encoded timestamps %v, want %v", timestamps(records2), timestamps(records))
			}
		})
	}
}

func timestamps(records []Record) []int64 {
	out := make([]int64, len(records))
	for i, r := range records {
		out[i] = r.TimestampMs
	}
	return out
}

func ExampleEncode() {
	records := []Record{
		{Offset: 10, TimestampMs: 1000, Key: []byte("k"), Value: []byte("v1")},
		{Offset: 12, TimestampMs: 1001, Key: []byte("k"), Value: []byte("v2")},
	}
	// Rewrite a compacted batch that once held offsets 10..14.
	whole, err := Encode(Header{BaseOffset: 10, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, 14-10, records, Zstd)
	if err != nil {
		panic(err)
	}
	h, _, _, _ := Next(whole)
	fmt.Println(h.BaseOffset, h.LastOffset(), h.NumRecords, h.Codec())
	// Output: 10 14 2 zstd
}

// TestConcurrentUse proves the pooled codec state is safe to share: run
// with -race, goroutines validating and encoding every codec at once must
// each get their own records back.
func TestConcurrentUse(t *testing.T) {
	const goroutines, rounds = 4, 10
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			for round := range rounds {
				codec := allCodecs[(g+round)%len(allCodecs)]
				value := []byte(fmt.Sprintf("goroutine %d round %d", g, round))
				_, records, err := Validate(Build([]Record{{Value: value}}, codec), DefaultLimits())
				if err == nil && !bytes.Equal(records[0].Value, value) {
					err = fmt.Errorf("%v: got %q, want %q", codec, records[0].Value, value)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
