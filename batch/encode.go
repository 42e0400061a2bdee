package batch

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Encode builds one batch from records, compressed with codec.
//
// The base offset is tmpl.BaseOffset and each record's offset delta is its
// Offset minus that base, so offsets may have gaps but must increase and
// start at or after the base. FirstTimestamp is records[0].TimestampMs,
// timestamp deltas are relative to it, and MaxTimestamp is the largest
// record timestamp.
//
// From tmpl it takes PartitionLeaderEpoch, ProducerID, ProducerEpoch,
// BaseSequence and Attributes except the codec bits. When tmpl has the
// log-append-time bit, MaxTimestamp is tmpl.MaxTimestamp, the append time.
//
// lastOffsetDelta becomes the batch's LastOffsetDelta, relative to the base
// offset. It must be at least the last record's delta. A producer passes
// len(records)-1. Compaction passes the original batch's header and
// LastOffsetDelta, as Kafka does: a batch keeps its base offset, base
// sequence and last offset delta whatever records it loses, because a
// producer's last sequence (BaseSequence + LastOffsetDelta) and last offset
// are read from them when producer state is rebuilt from the log.
//
// With no records, the batch is the empty one compaction leaves in place of
// a producer's last batch: it keeps tmpl's timestamps and has codec none and
// an empty records section, as Kafka writes it.
func Encode(tmpl Header, lastOffsetDelta int32, records []Record, codec Codec) ([]byte, error) {
	if codec < None || codec > Zstd {
		return nil, fmt.Errorf("encode batch: %v: %w", codec, ErrUnsupportedCodec)
	}
	base, firstTimestamp, maxTimestamp := tmpl.BaseOffset, tmpl.FirstTimestamp, tmpl.MaxTimestamp
	if len(records) > 0 {
		firstTimestamp = records[0].TimestampMs
		maxTimestamp = math.MinInt64
	} else {
		codec = None
	}
	blob, err := encodeRecords(records, base, firstTimestamp, lastOffsetDelta, &maxTimestamp)
	if err != nil {
		return nil, fmt.Errorf("encode batch at offset %d: %w", base, err)
	}
	if tmpl.LogAppendTime() {
		maxTimestamp = tmpl.MaxTimestamp
	}
	compressed, err := Compress(codec, blob)
	if err != nil {
		return nil, fmt.Errorf("encode batch at offset %d: %w", base, err)
	}
	if len(compressed) > math.MaxInt32-batchLengthMinimum {
		return nil, fmt.Errorf("encode batch at offset %d: records of %d bytes: %w", base, len(compressed), ErrTooLarge)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          base,
		Length:               int32(batchLengthMinimum + len(compressed)),
		PartitionLeaderEpoch: tmpl.PartitionLeaderEpoch,
		Magic:                MagicV2,
		Attributes:           tmpl.Attributes&^codecMask | int16(codec),
		LastOffsetDelta:      lastOffsetDelta,
		FirstTimestamp:       firstTimestamp,
		MaxTimestamp:         maxTimestamp,
		ProducerID:           tmpl.ProducerID,
		ProducerEpoch:        tmpl.ProducerEpoch,
		FirstSequence:        tmpl.BaseSequence,
		NumRecords:           int32(len(records)),
		Records:              compressed,
	}
	whole := rb.AppendTo(make([]byte, 0, HeaderBytes+len(compressed)))
	updateCRC(whole)
	return whole, nil
}

// encodeRecords encodes the records section uncompressed and raises
// *maxTimestamp to the largest record timestamp.
func encodeRecords(records []Record, base, firstTimestamp int64, lastOffsetDelta int32, maxTimestamp *int64) ([]byte, error) {
	var blob, body []byte
	previous := int64(-1)
	for i, r := range records {
		delta := r.Offset - base
		if delta <= previous || delta > math.MaxInt32 {
			return nil, fmt.Errorf("record %d: offset %d does not follow %d within an int32 delta: %w",
				i, r.Offset, base+previous, ErrInvalidRecord)
		}
		previous = delta
		*maxTimestamp = max(*maxTimestamp, r.TimestampMs)
		kr := kmsg.Record{
			TimestampDelta64: r.TimestampMs - firstTimestamp,
			OffsetDelta:      int32(delta),
			Key:              r.Key,
			Value:            r.Value,
			Headers:          make([]kmsg.Header, len(r.Headers)),
		}
		for j, rh := range r.Headers {
			kr.Headers[j] = kmsg.Header{Key: rh.Key, Value: rh.Value}
		}
		// kmsg writes Length as given; encode the body after a zero
		// length to measure it, then prefix the real length.
		body = kr.AppendTo(body[:0])[1:]
		if len(body) > math.MaxInt32 {
			return nil, fmt.Errorf("record %d: %d bytes: %w", i, len(body), ErrTooLarge)
		}
		blob = binary.AppendVarint(blob, int64(len(body)))
		blob = append(blob, body...)
	}
	if len(records) > 0 && int64(lastOffsetDelta) < previous {
		return nil, fmt.Errorf("last offset delta %d below the last record's delta %d: %w",
			lastOffsetDelta, previous, ErrInvalidRecord)
	}
	return blob, nil
}

// Build encodes records as a producer would, for tests: base offset 0,
// offsets 0..n-1 whatever the records' Offset fields say, no producer id
// (-1), leader epoch -1. It panics on an unknown codec or no records.
func Build(records []Record, codec Codec) []byte {
	numbered := make([]Record, len(records))
	for i, r := range records {
		r.Offset = int64(i)
		numbered[i] = r
	}
	if len(numbered) == 0 {
		panic("batch.Build: no records")
	}
	tmpl := Header{PartitionLeaderEpoch: -1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	whole, err := Encode(tmpl, int32(len(records)-1), numbered, codec)
	if err != nil {
		panic(fmt.Sprintf("batch.Build: %v", err))
	}
	return whole
}

// SetLogAppendTime rewrites a batch for message.timestamp.type=LogAppendTime:
// it sets attribute bit 3, FirstTimestamp and MaxTimestamp to tsMs, and
// recomputes the CRC. Readers then see tsMs as every record's timestamp.
// whole must be a batch accepted by Next; it panics if whole is shorter
// than a header.
func SetLogAppendTime(whole []byte, tsMs int64) {
	be := binary.BigEndian
	attributes := be.Uint16(whole[attributesAt:])
	be.PutUint16(whole[attributesAt:], attributes|logAppendTimeBit)
	be.PutUint64(whole[firstTimestampAt:], uint64(tsMs))
	be.PutUint64(whole[maxTimestampAt:], uint64(tsMs))
	updateCRC(whole)
}
