package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderBytes is the size of the RecordBatch v2 header, including the base
// offset and length fields that precede the batch proper. Part of the format.
const HeaderBytes = 61

// Byte positions of the header fields. Part of the format (see doc.go).
const (
	baseOffsetAt           = 0
	batchLengthAt          = 8
	partitionLeaderEpochAt = 12
	magicAt                = 16
	crcAt                  = 17
	attributesAt           = 21
	lastOffsetDeltaAt      = 23
	firstTimestampAt       = 27
	maxTimestampAt         = 35
	producerIDAt           = 43
	producerEpochAt        = 51
	baseSequenceAt         = 53
	numRecordsAt           = 57

	// lengthPrefixBytes is what precedes the bytes counted by BatchLength:
	// the base offset and the length field itself.
	lengthPrefixBytes = 12

	// crcFrom is where the CRC32C coverage starts: everything after the CRC
	// field, so the base offset and leader epoch can be rewritten freely.
	crcFrom = attributesAt

	// batchLengthMinimum is a BatchLength that covers the header alone.
	batchLengthMinimum = HeaderBytes - lengthPrefixBytes

	// MagicV2 is the only batch format accepted.
	MagicV2 = 2
)

// Attribute bits. Part of the format.
const (
	codecMask        = 0x07
	logAppendTimeBit = 0x08
	transactionalBit = 0x10
	controlBit       = 0x20
)

// ErrShort reports input that ends before the header or before the length
// the header declares: a torn tail at the end of a file, or a partial read.
var ErrShort = errors.New("batch: short input")

// ErrCorrupt reports bytes that cannot be a valid batch: wrong magic,
// impossible length, CRC32C mismatch. It is always wrapped with detail.
var ErrCorrupt = errors.New("batch: corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the fixed 61-byte prefix of a RecordBatch v2.
type Header struct {
	BaseOffset           int64
	BatchLength          int32 // bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// TotalBytes is the size of the whole batch on the wire and on disk.
func (h Header) TotalBytes() int { return lengthPrefixBytes + int(h.BatchLength) }

// LastOffset is the offset of the last record the batch claims.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows this batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Codec is the compression codec of the records (attribute bits 0-2).
func (h Header) Codec() Codec { return Codec(h.Attributes & codecMask) }

// LogAppendTime reports attribute bit 3: timestamps were set by the log.
func (h Header) LogAppendTime() bool { return h.Attributes&logAppendTimeBit != 0 }

// Transactional reports attribute bit 4.
func (h Header) Transactional() bool { return h.Attributes&transactionalBit != 0 }

// Control reports attribute bit 5: the batch holds a transaction marker.
func (h Header) Control() bool { return h.Attributes&controlBit != 0 }

// ParseHeader decodes the header at the start of b. It checks the magic
// byte and that the declared length can hold a header, but not the CRC and
// not that b holds the whole batch (see Next).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderBytes {
		return Header{}, fmt.Errorf("parse header: %d of %d bytes: %w", len(b), HeaderBytes, ErrShort)
	}
	be := binary.BigEndian
	h := Header{
		BaseOffset:           int64(be.Uint64(b[baseOffsetAt:])),
		BatchLength:          int32(be.Uint32(b[batchLengthAt:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[partitionLeaderEpochAt:])),
		Magic:                int8(b[magicAt]),
		CRC:                  be.Uint32(b[crcAt:]),
		Attributes:           int16(be.Uint16(b[attributesAt:])),
		LastOffsetDelta:      int32(be.Uint32(b[lastOffsetDeltaAt:])),
		FirstTimestamp:       int64(be.Uint64(b[firstTimestampAt:])),
		MaxTimestamp:         int64(be.Uint64(b[maxTimestampAt:])),
		ProducerID:           int64(be.Uint64(b[producerIDAt:])),
		ProducerEpoch:        int16(be.Uint16(b[producerEpochAt:])),
		BaseSequence:         int32(be.Uint32(b[baseSequenceAt:])),
		NumRecords:           int32(be.Uint32(b[numRecordsAt:])),
	}
	if h.Magic != MagicV2 {
		return Header{}, fmt.Errorf("parse header at offset %d: magic %d, want %d: %w", h.BaseOffset, h.Magic, MagicV2, ErrCorrupt)
	}
	if h.BatchLength < batchLengthMinimum {
		return Header{}, fmt.Errorf("parse header at offset %d: batch length %d below minimum %d: %w",
			h.BaseOffset, h.BatchLength, batchLengthMinimum, ErrCorrupt)
	}
	return h, nil
}

// Next splits the first whole batch off b, checking its header and CRC32C.
// whole and rest alias b. At the end of a file, ErrShort means a torn tail
// and ErrCorrupt means bytes that were never a valid batch.
func Next(b []byte) (h Header, whole []byte, rest []byte, err error) {
	h, err = ParseHeader(b)
	if err != nil {
		return Header{}, nil, b, err
	}
	total := h.TotalBytes()
	if len(b) < total {
		return Header{}, nil, b, fmt.Errorf("batch at offset %d: %d of %d bytes: %w", h.BaseOffset, len(b), total, ErrShort)
	}
	whole, rest = b[:total:total], b[total:]
	if err := CheckCRC(whole); err != nil {
		return Header{}, nil, b, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
	}
	return h, whole, rest, nil
}

// CheckCRC verifies the CRC32C of one whole batch (header included).
func CheckCRC(whole []byte) error {
	if len(whole) < HeaderBytes {
		return fmt.Errorf("check crc: %d of %d header bytes: %w", len(whole), HeaderBytes, ErrShort)
	}
	stored := binary.BigEndian.Uint32(whole[crcAt:])
	computed := crc32.Checksum(whole[crcFrom:], castagnoli)
	if stored != computed {
		return fmt.Errorf("crc32c mismatch: stored %#08x, computed %#08x: %w", stored, computed, ErrCorrupt)
	}
	return nil
}

// SetBaseOffset rewrites the base offset of the batch at the start of b.
// The field lies outside the CRC, so the CRC stays valid.
func SetBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[baseOffsetAt:], uint64(base))
}

// SetPartitionLeaderEpoch rewrites the leader epoch of the batch at the
// start of b. The field lies outside the CRC, so the CRC stays valid.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[partitionLeaderEpochAt:], uint32(epoch))
}

// updateCRC recomputes the CRC after a change to covered bytes.
func updateCRC(whole []byte) {
	binary.BigEndian.PutUint32(whole[crcAt:], crc32.Checksum(whole[crcFrom:], castagnoli))
}

// Codec is a record compression codec, as stored in attribute bits 0-2.
type Codec int8

// Codecs defined by the Kafka protocol. Values are part of the format.
const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}
