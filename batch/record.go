package batch

import (
	"errors"
	"fmt"
	"math"
)

// Record is one decoded record. Key, Value and header values alias the
// batch (or its decompressed copy): they must not be modified, and stay
// valid only as long as the caller keeps that memory unchanged.
type Record struct {
	Offset      int64
	TimestampMs int64
	Key         []byte // nil means null
	Value       []byte // nil means null: a tombstone
	Headers     []RecordHeader
}

// RecordHeader is one record header. A header key is never null; a value
// may be (nil).
type RecordHeader struct {
	Key   string
	Value []byte
}

// ErrInvalidRecord reports a batch whose records are malformed or do not
// agree with the batch header. It is always wrapped with detail.
var ErrInvalidRecord = errors.New("batch: invalid record")

// Smallest possible encodings, used to reject counts that cannot fit in
// the bytes present before anything is allocated for them.
const (
	// length, attributes, timestamp delta, offset delta, key length,
	// value length, header count: one byte each at least.
	recordBytesMin = 7
	// key length and value length.
	headerBytesMin = 2
)

// offsetRule says which record offset deltas a batch may carry.
type offsetRule int

const (
	// contiguousOffsets is what producers send: deltas exactly 0..n-1.
	contiguousOffsets offsetRule = iota
	// increasingOffsets is what compaction leaves: strictly increasing
	// deltas, possibly with gaps, within 0..LastOffsetDelta.
	increasingOffsets
)

// decodeRecords decodes the uncompressed records section of the batch with
// header h. It is a pure function over blob; the returned records alias it.
//
// The decoder is written here rather than taken from kmsg because kmsg
// allocates a record's header array before any limit can be applied, and
// reports every failure as one error; the tests check this decoder against
// kmsg on every batch it accepts.
func decodeRecords(h Header, blob []byte, lim Limits, rule offsetRule) ([]Record, error) {
	if err := checkRecordCount(h, blob, lim); err != nil {
		return nil, err
	}
	records := make([]Record, h.NumRecords)
	i := 0
	err := walkRecords(h, blob, lim, rule, func(r *Record) error {
		records[i] = *r
		i++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// checkRecordCount rejects a record count that is negative, above the
// limit, or larger than blob could hold, before anything is allocated for it.
func checkRecordCount(h Header, blob []byte, lim Limits) error {
	count := int(h.NumRecords)
	switch {
	case count < 0:
		return fmt.Errorf("record count %d is negative: %w", count, ErrInvalidRecord)
	case count > lim.RecordsMax:
		return fmt.Errorf("record count %d above limit %d: %w", count, lim.RecordsMax, ErrTooLarge)
	case count > len(blob)/recordBytesMin:
		return fmt.Errorf("record count %d cannot fit in %d bytes: %w", count, len(blob), ErrInvalidRecord)
	}
	return nil
}

// walkRecords decodes the records section blob one record at a time into
// the same Record, which visit sees only during its call: checking a
// produced batch then allocates nothing per record (but its headers). An
// error from visit stops the walk and is returned as is.
func walkRecords(h Header, blob []byte, lim Limits, rule offsetRule, visit func(r *Record) error) error {
	if err := checkRecordCount(h, blob, lim); err != nil {
		return err
	}
	count := int(h.NumRecords)
	d := recordDecoder{h: h, headersLeft: lim.HeadersMax}
	previousDelta := int64(-1)
	var r Record
	for i := range count {
		delta, n, err := d.decode(blob, &r)
		if err != nil {
			return fmt.Errorf("record %d of %d: %w", i, count, err)
		}
		blob = blob[n:]
		if err := checkDelta(rule, h, i, previousDelta, delta); err != nil {
			return fmt.Errorf("record %d of %d: %w", i, count, err)
		}
		previousDelta = delta
		if err := visit(&r); err != nil {
			return err
		}
	}
	if len(blob) != 0 {
		return fmt.Errorf("%d bytes after the last of %d records: %w", len(blob), count, ErrInvalidRecord)
	}
	if rule == contiguousOffsets && int64(h.LastOffsetDelta) != int64(count)-1 {
		return fmt.Errorf("last offset delta %d with %d records: %w", h.LastOffsetDelta, count, ErrInvalidRecord)
	}
	return nil
}

func checkDelta(rule offsetRule, h Header, index int, previousDelta, delta int64) error {
	switch rule {
	case contiguousOffsets:
		if delta != int64(index) {
			return fmt.Errorf("offset delta %d, want %d: %w", delta, index, ErrInvalidRecord)
		}
	case increasingOffsets:
		if delta <= previousDelta || delta > int64(h.LastOffsetDelta) {
			return fmt.Errorf("offset delta %d after %d, last offset delta %d: %w",
				delta, previousDelta, h.LastOffsetDelta, ErrInvalidRecord)
		}
	}
	return nil
}

// recordDecoder carries what decoding one record needs from the batch.
type recordDecoder struct {
	h           Header
	headersLeft int // remaining header budget for the whole batch
}

// decode decodes the record at the start of b into r, returning its offset
// delta and the number of bytes it occupies.
func (d *recordDecoder) decode(b []byte, r *Record) (delta int64, n int, err error) {
	length, n, err := readVarint32(b, "record length")
	if err != nil {
		return 0, 0, err
	}
	if length < 0 || int64(length) > int64(len(b)-n) {
		return 0, 0, fmt.Errorf("record length %d with %d bytes left: %w", length, len(b)-n, ErrInvalidRecord)
	}
	body := fieldReader{b: b[n : n+int(length)]}
	body.skip(1, "attributes") // unused by records v2
	timestampDelta := body.varint64("timestamp delta")
	offsetDelta := body.varint32("offset delta")
	r.Key = body.nullableBytes("key", "key length")
	r.Value = body.nullableBytes("value", "value length")
	headerCount := body.varint32("header count")
	if body.err == nil {
		r.Headers, body.err = d.headers(&body, headerCount)
	}
	if body.err != nil {
		return 0, 0, body.err
	}
	if len(body.b) != 0 {
		return 0, 0, fmt.Errorf("record length %d leaves %d bytes unread: %w", length, len(body.b), ErrInvalidRecord)
	}
	r.Offset = d.h.BaseOffset + int64(offsetDelta)
	r.TimestampMs = d.h.FirstTimestamp + timestampDelta
	if d.h.LogAppendTime() {
		// The log's timestamp replaces every record's timestamp.
		r.TimestampMs = d.h.MaxTimestamp
	}
	return int64(offsetDelta), n + int(length), nil
}

func (d *recordDecoder) headers(body *fieldReader, count int32) ([]RecordHeader, error) {
	if count < 0 {
		return nil, fmt.Errorf("header count %d is negative: %w", count, ErrInvalidRecord)
	}
	if int64(count) > int64(len(body.b)/headerBytesMin) {
		return nil, fmt.Errorf("header count %d cannot fit in %d bytes: %w", count, len(body.b), ErrInvalidRecord)
	}
	if int(count) > d.headersLeft {
		return nil, fmt.Errorf("header count %d above the batch's remaining limit %d: %w", count, d.headersLeft, ErrTooLarge)
	}
	if count == 0 {
		return nil, nil
	}
	d.headersLeft -= int(count)
	headers := make([]RecordHeader, count)
	for i := range headers {
		key := body.nullableBytes("header key", "header key length")
		if body.err == nil && key == nil {
			return nil, fmt.Errorf("header %d: null key: %w", i, ErrInvalidRecord)
		}
		headers[i] = RecordHeader{Key: string(key), Value: body.nullableBytes("header value", "header value length")}
		if body.err != nil {
			return nil, fmt.Errorf("header %d: %w", i, body.err)
		}
	}
	return headers, nil
}

// fieldReader reads successive fields; after the first error every read
// returns zero and err keeps that first error.
type fieldReader struct {
	b   []byte
	err error
}

func (f *fieldReader) skip(n int, field string) {
	if f.err != nil {
		return
	}
	if len(f.b) < n {
		f.err = fmt.Errorf("%s: %d bytes left, need %d: %w", field, len(f.b), n, ErrInvalidRecord)
		return
	}
	f.b = f.b[n:]
}

func (f *fieldReader) varint32(field string) int32 {
	if f.err != nil {
		return 0
	}
	v, n, err := readVarint32(f.b, field)
	f.err = err
	f.b = f.b[n:]
	return v
}

func (f *fieldReader) varint64(field string) int64 {
	if f.err != nil {
		return 0
	}
	v, n, err := readVarint64(f.b, field)
	f.err = err
	f.b = f.b[n:]
	return v
}

// nullableBytes reads a varint length (-1 for null) and that many bytes.
// The length's name is passed whole rather than built from field: building
// it cost an allocation per key and value of every record validated.
func (f *fieldReader) nullableBytes(field, lengthField string) []byte {
	length := f.varint32(lengthField)
	if f.err != nil {
		return nil
	}
	switch {
	case length == -1:
		return nil
	case length < -1 || int(length) > len(f.b):
		f.err = fmt.Errorf("%s length %d with %d bytes left: %w", field, length, len(f.b), ErrInvalidRecord)
		return nil
	}
	v := f.b[:length:length]
	f.b = f.b[length:]
	return v
}

// readVarint32 reads a zigzag varint of at most 5 bytes whose value fits
// in 32 bits, as Kafka does. n is 0 on error.
func readVarint32(b []byte, field string) (v int32, n int, err error) {
	u, n, err := readUvarint(b, 5, field)
	if err != nil {
		return 0, 0, err
	}
	if u > math.MaxUint32 {
		return 0, 0, fmt.Errorf("%s: varint overflows 32 bits: %w", field, ErrInvalidRecord)
	}
	return int32(uint32(u>>1) ^ -uint32(u&1)), n, nil
}

// readVarint64 reads a zigzag varint of at most 10 bytes.
func readVarint64(b []byte, field string) (v int64, n int, err error) {
	u, n, err := readUvarint(b, 10, field)
	if err != nil {
		return 0, 0, err
	}
	return int64(u>>1) ^ -int64(u&1), n, nil
}

func readUvarint(b []byte, bytesMax int, field string) (uint64, int, error) {
	var u uint64
	for i := 0; i < bytesMax; i++ {
		if i == len(b) {
			return 0, 0, fmt.Errorf("%s: varint cut short after %d bytes: %w", field, i, ErrInvalidRecord)
		}
		c := b[i]
		if i == 9 && c > 1 {
			return 0, 0, fmt.Errorf("%s: varint overflows 64 bits: %w", field, ErrInvalidRecord)
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return u, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("%s: varint longer than %d bytes: %w", field, bytesMax, ErrInvalidRecord)
}
