package batch

import "fmt"

// Limits caps the memory one batch may make the decoder use. A zero or
// negative field means the DefaultLimits value for it.
type Limits struct {
	// DecompressedBytesMax caps one batch's records section after
	// decompression. Decompression stops with ErrTooLarge as soon as the
	// output passes it, so a decompression bomb costs at most about twice
	// this much memory.
	DecompressedBytesMax int
	// RecordsMax caps the records in one batch.
	RecordsMax int
	// HeadersMax caps the record headers summed over one batch. Decoded
	// headers take more memory than their encoding (about 40 bytes for a
	// 2-byte header), so they have their own cap.
	HeadersMax int
}

// Defaults. A decoded batch at these caps holds at most 64 MiB of
// records plus about 90 MiB of Record and 40 MiB of RecordHeader values.
const (
	// DecompressedBytesMaxDefault is 64 MiB: room for a full-sized produce
	// request (1 MiB by default in Kafka) compressing 64 to 1.
	DecompressedBytesMaxDefault = 64 << 20
	// RecordsMaxDefault is 2^20: 64 bytes per record at the byte cap.
	RecordsMaxDefault = 1 << 20
	// HeadersMaxDefault is 2^20.
	HeadersMaxDefault = 1 << 20
)

// DefaultLimits returns the limits used where no caller chose others.
func DefaultLimits() Limits {
	return Limits{
		DecompressedBytesMax: DecompressedBytesMaxDefault,
		RecordsMax:           RecordsMaxDefault,
		HeadersMax:           HeadersMaxDefault,
	}
}

// withDefaults replaces unset fields by their defaults.
func (l Limits) withDefaults() Limits {
	if l.DecompressedBytesMax <= 0 {
		l.DecompressedBytesMax = DecompressedBytesMaxDefault
	}
	if l.RecordsMax <= 0 {
		l.RecordsMax = RecordsMaxDefault
	}
	if l.HeadersMax <= 0 {
		l.HeadersMax = HeadersMaxDefault
	}
	return l
}

// Validate checks one whole batch as a broker does before appending it
// from a producer: header and CRC32C, magic 2, no bytes after the batch,
// a known codec, at least one record, NumRecords equal to the records
// decoded, offset deltas exactly 0..n-1 with LastOffsetDelta n-1, every
// record well formed, and everything within lim.
//
// It returns the header and the records, whose offsets are BaseOffset plus
// their delta and whose timestamps are MaxTimestamp when the batch uses
// log append time. For an uncompressed batch the records alias whole.
//
// Errors wrap ErrShort or ErrCorrupt (the batch bytes), ErrInvalidRecord
// (the records or their agreement with the header), ErrTooLarge (a cap in
// lim) or ErrUnsupportedCodec.
func Validate(whole []byte, lim Limits) (Header, []Record, error) {
	h, whole, rest, err := Next(whole)
	if err != nil {
		return Header{}, nil, fmt.Errorf("validate batch: %w", err)
	}
	if len(rest) != 0 {
		return Header{}, nil, fmt.Errorf("validate batch at offset %d: %d bytes after the batch: %w",
			h.BaseOffset, len(rest), ErrInvalidRecord)
	}
	if h.NumRecords < 1 {
		return Header{}, nil, fmt.Errorf("validate batch at offset %d: record count %d, want at least 1: %w",
			h.BaseOffset, h.NumRecords, ErrInvalidRecord)
	}
	records, err := decode(h, whole, lim, contiguousOffsets)
	if err != nil {
		return Header{}, nil, fmt.Errorf("validate batch at offset %d: %w", h.BaseOffset, err)
	}
	return h, records, nil
}

// ValidateEach is Validate for a batch Next has already split off and
// checked (h and whole are what it returned): it checks the rest as
// Validate does, but hands each record to visit instead of returning them
// all, reusing one Record, which visit must not keep. A produce to a topic
// that needs no records after validation then allocates none per record
// and computes the CRC once. An error from visit stops the check and is
// returned unwrapped.
func ValidateEach(h Header, whole []byte, lim Limits, visit func(r *Record) error) error {
	if len(whole) != h.TotalBytes() {
		return fmt.Errorf("validate batch at offset %d: %d bytes for a batch of %d: %w",
			h.BaseOffset, len(whole), h.TotalBytes(), ErrInvalidRecord)
	}
	if h.NumRecords < 1 {
		return fmt.Errorf("validate batch at offset %d: record count %d, want at least 1: %w",
			h.BaseOffset, h.NumRecords, ErrInvalidRecord)
	}
	lim = lim.withDefaults()
	if int(h.NumRecords) > lim.RecordsMax {
		return fmt.Errorf("validate batch at offset %d: record count %d above limit %d: %w",
			h.BaseOffset, h.NumRecords, lim.RecordsMax, ErrTooLarge)
	}
	blob, err := Decompress(h.Codec(), whole[HeaderBytes:], lim.DecompressedBytesMax)
	if err != nil {
		return fmt.Errorf("validate batch at offset %d: %w", h.BaseOffset, err)
	}
	var visitErr error
	err = walkRecords(h, blob, lim, contiguousOffsets, func(r *Record) error {
		visitErr = visit(r)
		return visitErr
	})
	switch {
	case visitErr != nil:
		return visitErr
	case err != nil:
		return fmt.Errorf("validate batch at offset %d: %w", h.BaseOffset, err)
	}
	return nil
}

// Records decodes (and decompresses) the records of a stored batch: one
// that passed Validate when it was appended, or that Encode wrote. It checks the header, CRC32C
// and every record, but lets offsets have the gaps compaction leaves: the
// deltas must only increase and stay within LastOffsetDelta. A batch that
// compaction emptied yields no records.
func Records(whole []byte, lim Limits) ([]Record, error) {
	h, whole, rest, err := Next(whole)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("read records at offset %d: %d bytes after the batch: %w",
			h.BaseOffset, len(rest), ErrCorrupt)
	}
	records, err := decode(h, whole, lim, increasingOffsets)
	if err != nil {
		return nil, fmt.Errorf("read records at offset %d: %w", h.BaseOffset, err)
	}
	return records, nil
}

// decode decompresses and decodes the records of a batch that passed Next.
func decode(h Header, whole []byte, lim Limits, rule offsetRule) ([]Record, error) {
	lim = lim.withDefaults()
	if int(h.NumRecords) > lim.RecordsMax {
		// Checked before decompressing: the header alone condemns it.
		return nil, fmt.Errorf("record count %d above limit %d: %w", h.NumRecords, lim.RecordsMax, ErrTooLarge)
	}
	blob, err := Decompress(h.Codec(), whole[HeaderBytes:], lim.DecompressedBytesMax)
	if err != nil {
		return nil, err
	}
	return decodeRecords(h, blob, lim, rule)
}
