package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// rawBatch lays out a header by hand (independently of Encode) followed by
// payload, with a correct length and CRC.
func rawBatch(h Header, payload []byte) []byte {
	b := make([]byte, HeaderBytes+len(payload))
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(h.BaseOffset))
	be.PutUint32(b[8:], uint32(HeaderBytes-12+len(payload)))
	be.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = 2
	be.PutUint16(b[21:], uint16(h.Attributes))
	be.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[27:], uint64(h.FirstTimestamp))
	be.PutUint64(b[35:], uint64(h.MaxTimestamp))
	be.PutUint64(b[43:], uint64(h.ProducerID))
	be.PutUint16(b[51:], uint16(h.ProducerEpoch))
	be.PutUint32(b[53:], uint32(h.BaseSequence))
	be.PutUint32(b[57:], uint32(h.NumRecords))
	copy(b[HeaderBytes:], payload)
	updateCRC(b)
	return b
}

var sampleHeader = Header{
	BaseOffset: 100, PartitionLeaderEpoch: 7, Attributes: int16(Zstd) | 0x08 | 0x10 | 0x20,
	LastOffsetDelta: 4, FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_500,
	ProducerID: 42, ProducerEpoch: 3, BaseSequence: 9, NumRecords: 5,
}

// TestParseHeaderFields proves every field is read from its documented
// position and the derived accessors follow from them.
func TestParseHeaderFields(t *testing.T) {
	payload := []byte("0123456789")
	b := rawBatch(sampleHeader, payload)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleHeader
	want.BatchLength = int32(HeaderBytes - 12 + len(payload))
	want.Magic = 2
	want.CRC = binary.BigEndian.Uint32(b[17:])
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	if h.TotalBytes() != len(b) {
		t.Errorf("TotalBytes %d, want %d", h.TotalBytes(), len(b))
	}
	if h.LastOffset() != 104 || h.NextOffset() != 105 {
		t.Errorf("LastOffset %d NextOffset %d, want 104 105", h.LastOffset(), h.NextOffset())
	}
	if h.Codec() != Zstd || !h.LogAppendTime() || !h.Transactional() || !h.Control() {
		t.Errorf("attributes decoded wrong: codec %v lat %v txn %v ctl %v", h.Codec(), h.LogAppendTime(), h.Transactional(), h.Control())
	}
	plain, _ := ParseHeader(rawBatch(Header{}, nil))
	if plain.Codec() != None || plain.LogAppendTime() || plain.Transactional() || plain.Control() {
		t.Errorf("zero attributes decoded as set: %+v", plain)
	}
}

func TestParseHeaderAndNextErrors(t *testing.T) {
	good := rawBatch(sampleHeader, []byte("payload"))
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name     string
		input    []byte
		parseErr error // from ParseHeader
		nextErr  error // from Next
	}{
		{"empty", nil, ErrShort, ErrShort},
		{"one byte short of a header", good[:HeaderBytes-1], ErrShort, ErrShort},
		{"header but torn body", good[:len(good)-1], nil, ErrShort},
		{"wrong magic 1", mutate(func(b []byte) { b[16] = 1 }), ErrCorrupt, ErrCorrupt},
		{"wrong magic 3", mutate(func(b []byte) { b[16] = 3 }), ErrCorrupt, ErrCorrupt},
		{"length below header", mutate(func(b []byte) { binary.BigEndian.PutUint32(b[8:], HeaderBytes-13) }), ErrCorrupt, ErrCorrupt},
		{"negative length", mutate(func(b []byte) { binary.BigEndian.PutUint32(b[8:], 0xffffffff) }), ErrCorrupt, ErrCorrupt},
		{"length beyond input", mutate(func(b []byte) { binary.BigEndian.PutUint32(b[8:], 1<<30) }), nil, ErrShort},
		{"flipped payload bit", mutate(func(b []byte) { b[len(b)-1] ^= 1 }), nil, ErrCorrupt},
		{"flipped attributes bit", mutate(func(b []byte) { b[22] ^= 1 }), nil, ErrCorrupt},
		{"flipped crc bit", mutate(func(b []byte) { b[17] ^= 0x80 }), nil, ErrCorrupt},
		{"good", good, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader(tt.input)
			if !errors.Is(err, tt.parseErr) || (tt.parseErr == nil) != (err == nil) {
				t.Errorf("ParseHeader error %v, want %v", err, tt.parseErr)
			}
			_, whole, rest, err := Next(tt.input)
			if !errors.Is(err, tt.nextErr) || (tt.nextErr == nil) != (err == nil) {
				t.Errorf("Next error %v, want %v", err, tt.nextErr)
			}
			if err != nil && (whole != nil || len(rest) != len(tt.input)) {
				t.Errorf("Next on error returned whole %d bytes, rest %d bytes; want nil and the input", len(whole), len(rest))
			}
		})
	}
}

// TestNextSplitsConcatenatedBatches proves Next walks a segment-like run of
// batches and leaves a torn tail as ErrShort.
func TestNextSplitsConcatenatedBatches(t *testing.T) {
	first := rawBatch(Header{BaseOffset: 0, LastOffsetDelta: 1, NumRecords: 2}, []byte("aa"))
	second := rawBatch(Header{BaseOffset: 2, NumRecords: 1}, []byte("bbbb"))
	log := append(append(bytes.Clone(first), second...), second[:30]...)

	h, whole, rest, err := Next(log)
	if err != nil || h.BaseOffset != 0 || !bytes.Equal(whole, first) {
		t.Fatalf("first: h=%+v err=%v", h, err)
	}
	h, whole, rest, err = Next(rest)
	if err != nil || h.BaseOffset != 2 || !bytes.Equal(whole, second) {
		t.Fatalf("second: h=%+v err=%v", h, err)
	}
	if _, _, _, err = Next(rest); !errors.Is(err, ErrShort) {
		t.Fatalf("torn tail: err=%v, want ErrShort", err)
	}
	if cap(whole) != len(whole) {
		t.Errorf("whole has spare capacity %d: appending to it would overwrite the next batch", cap(whole)-len(whole))
	}
}

// TestSetOutsideCRC proves base offset and leader epoch can be assigned
// without recomputing the CRC, as the log does on append.
func TestSetOutsideCRC(t *testing.T) {
	b := rawBatch(sampleHeader, []byte("x"))
	SetBaseOffset(b, 1<<40)
	SetPartitionLeaderEpoch(b, 99)
	h, _, _, err := Next(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 99 {
		t.Fatalf("got base %d epoch %d", h.BaseOffset, h.PartitionLeaderEpoch)
	}
}

func TestCheckCRCShort(t *testing.T) {
	if err := CheckCRC(make([]byte, 20)); !errors.Is(err, ErrShort) {
		t.Fatalf("err=%v, want ErrShort", err)
	}
}

func TestCodecString(t *testing.T) {
	for c, want := range map[Codec]string{None: "none", Gzip: "gzip", Snappy: "snappy", LZ4: "lz4", Zstd: "zstd", 5: "codec(5)"} {
		if c.String() != want {
			t.Errorf("Codec(%d).String() = %q, want %q", c, c.String(), want)
		}
	}
}
