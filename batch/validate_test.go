package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

// v encodes a zigzag varint, as records do.
func v(x int64) []byte { return binary.AppendVarint(nil, x) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// record prefixes body with its varint length.
func record(body ...[]byte) []byte {
	b := cat(body...)
	return cat(v(int64(len(b))), b)
}

// goodBody is a well-formed record body with the given offset delta.
func goodBody(delta int64) []byte {
	return cat([]byte{0}, v(0), v(delta), v(-1), v(1), []byte("x"), v(0))
}

// batchOf wraps a records section in a header claiming count records
// 0..count-1, uncompressed unless attributes say otherwise.
func batchOf(count int32, attributes int16, records ...[]byte) []byte {
	return rawBatch(Header{NumRecords: count, LastOffsetDelta: count - 1, Attributes: attributes}, cat(records...))
}

// allocatedBytes reports the bytes f allocates.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestValidateRejects proves each way a batch can be wrong is refused with
// the sentinel a broker maps to its error code.
func TestValidateRejects(t *testing.T) {
	good := record(goodBody(0))
	tight := Limits{DecompressedBytesMax: 64, RecordsMax: 3, HeadersMax: 2}
	withHeaders := func(n int) []byte {
		hs := [][]byte{[]byte{0}, v(0), v(0), v(-1), v(-1), v(int64(n))}
		for range n {
			hs = append(hs, v(1), []byte("k"), v(-1))
		}
		return record(hs...)
	}
	withTrailer := append(Build([]Record{{Value: []byte("x")}}, None), 0)
	tests := []struct {
		name  string
		batch []byte
		lim   Limits
		want  error
	}{
		{"torn batch", func() []byte { b := Build([]Record{{Value: []byte("x")}}, None); return b[:len(b)-1] }(), Limits{}, ErrShort},
		{"bad crc", func() []byte { b := Build([]Record{{Value: []byte("x")}}, None); b[len(b)-1] ^= 1; return b }(), Limits{}, ErrCorrupt},
		{"bytes after the batch", withTrailer, Limits{}, ErrInvalidRecord},
		{"no records", batchOf(0, 0), Limits{}, ErrInvalidRecord},
		{"negative record count", batchOf(-1, 0, good), Limits{}, ErrInvalidRecord},
		{"count above records present", batchOf(2, 0, good), Limits{}, ErrInvalidRecord},
		{"count below records present", batchOf(1, 0, good, record(goodBody(1))), Limits{}, ErrInvalidRecord},
		{"first delta not 0", batchOf(1, 0, record(goodBody(1))), Limits{}, ErrInvalidRecord},
		{"deltas out of order", batchOf(2, 0, record(goodBody(1)), record(goodBody(0))), Limits{}, ErrInvalidRecord},
		{"last offset delta disagrees", rawBatch(Header{NumRecords: 1, LastOffsetDelta: 3}, good), Limits{}, ErrInvalidRecord},
		{"record length past the end", batchOf(1, 0, cat(v(40), goodBody(0))), Limits{}, ErrInvalidRecord},
		{"record length negative", batchOf(1, 0, cat(v(-3), goodBody(0))), Limits{}, ErrInvalidRecord},
		{"record length leaves bytes unread", batchOf(1, 0, record(goodBody(0), []byte{0})), Limits{}, ErrInvalidRecord},
		{"record cut inside value", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(5), []byte("ab"))), Limits{}, ErrInvalidRecord},
		{"record without attributes", batchOf(1, 0, record(), make([]byte, 6)), Limits{}, ErrInvalidRecord},
		{"key length -2", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-2), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"key longer than record", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(100), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"header count negative", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(-1), v(-1))), Limits{}, ErrInvalidRecord},
		{"header count above bytes", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(-1), v(1<<30), v(0), v(0))), Limits{}, ErrInvalidRecord},
		{"null header key", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"header value past the end", batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(0), v(9))), Limits{}, ErrInvalidRecord},
		{"varint of 6 bytes", batchOf(1, 0, record([]byte{0}, v(0), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0}, v(-1), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"varint over 32 bits", batchOf(1, 0, record([]byte{0}, v(0), []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, v(-1), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"varint over 64 bits", batchOf(1, 0, record([]byte{0}, bytes.Repeat([]byte{0xff}, 9), []byte{2}, v(0), v(-1), v(-1), v(0))), Limits{}, ErrInvalidRecord},
		{"codec 5", batchOf(1, 5, good), Limits{}, ErrUnsupportedCodec},
		{"codec 7", batchOf(1, 7, good), Limits{}, ErrUnsupportedCodec},
		{"garbage gzip", batchOf(1, int16(Gzip), good), Limits{}, ErrCorrupt},
		{"garbage lz4", batchOf(1, int16(LZ4), good), Limits{}, ErrCorrupt},
		{"garbage zstd", batchOf(1, int16(Zstd), good), Limits{}, ErrCorrupt},
		{"garbage snappy", batchOf(1, int16(Snappy), []byte{0x05, 0xff, 0xff}), Limits{}, ErrCorrupt},
		{"records above limit", batchOf(4, 0, good, record(goodBody(1)), record(goodBody(2)), record(goodBody(3))), tight, ErrTooLarge},
		{"headers above limit", batchOf(1, 0, withHeaders(3)), tight, ErrTooLarge},
		{"records section above limit", Build([]Record{{Value: make([]byte, 65)}}, None), tight, ErrTooLarge},
		{"decompressed above limit", Build([]Record{{Value: make([]byte, 65)}}, Zstd), tight, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, records, err := Validate(tt.batch, tt.lim)
			t.Log(err) // -v shows that each case fails for its own reason
			if !errors.Is(err, tt.want) {
				t.Fatalf("err=%v, want %v", err, tt.want)
			}
			if records != nil {
				t.Fatalf("records returned with error: %d", len(records))
			}
		})
	}
	for _, tt := range tests {
		h, whole, rest, err := Next(tt.batch)
		if err != nil || len(rest) != 0 {
			continue // refused by Next, before ValidateEach's part
		}
		err = ValidateEach(h, whole, tt.lim, func(*Record) error { return nil })
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: ValidateEach err=%v, want %v", tt.name, err, tt.want)
		}
	}
	// The limits are not off by one: exactly at each cap is accepted.
	if _, _, err := Validate(batchOf(3, 0, good, record(goodBody(1)), record(goodBody(2))), tight); err != nil {
		t.Errorf("batch at the records limit: %v", err)
	}
	if _, _, err := Validate(batchOf(1, 0, withHeaders(2)), tight); err != nil {
		t.Errorf("batch at the headers limit: %v", err)
	}
}

// TestValidateEachAllocatesNothingPerRecord proves checking an uncompressed
// batch costs no allocation per record: a produce's validation runs on the
// writer's path for every batch, and a 1 MiB batch of 100-byte records has
// about ten thousand of them.
func TestValidateEachAllocatesNothingPerRecord(t *testing.T) {
	records := make([]Record, 1000)
	for i := range records {
		records[i] = Record{Key: []byte{byte(i)}, Value: make([]byte, 100)}
	}
	h, whole, _, err := Next(Build(records, None))
	if err != nil {
		t.Fatal(err)
	}
	visited := 0
	allocs := testing.AllocsPerRun(10, func() {
		visited = 0
		if err := ValidateEach(h, whole, DefaultLimits(), func(*Record) error { visited++; return nil }); err != nil {
			t.Fatal(err)
		}
	})
	if visited != len(records) {
		t.Errorf("visited %d records, want %d", visited, len(records))
	}
	if allocs > 4 {
		t.Errorf("ValidateEach of %d records: %.0f allocations, want a few for the whole batch", len(records), allocs)
	}
}

// TestValidateEachReturnsVisitError proves the caller's own refusal comes
// back as it was returned, so the caller keeps its classification.
func TestValidateEachReturnsVisitError(t *testing.T) {
	h, whole, _, err := Next(Build([]Record{{Value: []byte("a")}, {Value: []byte("b")}}, None))
	if err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("no value b here")
	seen := 0
	err = ValidateEach(h, whole, DefaultLimits(), func(r *Record) error {
		seen++
		if string(r.Value) == "b" {
			return refusal
		}
		return nil
	})
	if err != refusal || seen != 2 {
		t.Errorf("err=%v after %d records, want the visit's own error after 2", err, seen)
	}
}

// TestClaimedCountsDoNotAllocate proves counts read from input are checked
// against the bytes present before anything is allocated for them.
func TestClaimedCountsDoNotAllocate(t *testing.T) {
	manyRecords := rawBatch(Header{NumRecords: 1 << 20, LastOffsetDelta: 1<<20 - 1}, record(goodBody(0)))
	manyHeaders := batchOf(1, 0, record([]byte{0}, v(0), v(0), v(-1), v(-1), v(1<<28), make([]byte, 64)))
	for name, b := range map[string][]byte{"records": manyRecords, "headers": manyHeaders} {
		var err error
		allocated := allocatedBytes(func() { _, _, err = Validate(b, DefaultLimits()) })
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: err=%v, want ErrInvalidRecord", name, err)
		}
		if allocated > 64<<10 {
			t.Errorf("%s: rejecting a claimed count allocated %d bytes", name, allocated)
		}
	}
}

// TestControlAndTransactionalBatches proves the attribute bits pass through
// validation untouched: whether a client may send them is the protocol
// layer's decision.
func TestControlAndTransactionalBatches(t *testing.T) {
	whole, err := Encode(Header{Attributes: controlBit | transactionalBit, ProducerID: 5},
		0, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}, None)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := Validate(whole, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !h.Control() || !h.Transactional() || h.LogAppendTime() {
		t.Fatalf("attributes %#x decoded wrong", h.Attributes)
	}
}

// TestDefaultLimitsFillZeroFields proves a zero Limits behaves as the
// defaults, so a caller that sets one field does not disable the others.
func TestDefaultLimitsFillZeroFields(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("zero limits became %+v", got)
	}
	if got := (Limits{RecordsMax: 5}).withDefaults(); got.RecordsMax != 5 || got.HeadersMax != HeadersMaxDefault {
		t.Fatalf("partial limits became %+v", got)
	}
}
