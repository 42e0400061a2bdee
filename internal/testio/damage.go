package testio

import (
	"encoding/binary"
	"fmt"
	"os"
)

// RecordBatch v2 layout facts the damage below relies on.
const (
	batchLengthAt     = 8  // int32 batch length after the base offset
	batchEpochAt      = 12 // int32 partition leader epoch, after the length
	batchMagicAt      = 16 // magic byte, after partition leader epoch
	batchOverheadSize = 12 // base offset and length, not counted by the length
)

// FlipSecondBatchMagic damages, in place, the second RecordBatch of segment
// bytes as a bit flip on disk would: the first batch stays valid, so a
// recovery that trusts the segment (it was closed cleanly) does not notice,
// and the first read across the second batch does.
func FlipSecondBatchMagic(segment []byte) error {
	second, err := secondBatch(segment, batchMagicAt+1)
	if err != nil {
		return err
	}
	segment[second+batchMagicAt] ^= 0x40
	return nil
}

// FlipSecondBatchBody flips a bit in the last byte of the second batch of
// a segment's bytes, in its records: the header still parses, and only
// the batch's CRC tells the damage.
func FlipSecondBatchBody(segment []byte) error {
	second, err := secondBatch(segment, batchLengthAt+4)
	if err != nil {
		return err
	}
	end := second + batchOverheadSize + int(binary.BigEndian.Uint32(segment[second+batchLengthAt:]))
	if end > len(segment) {
		return fmt.Errorf("segment of %d bytes ends inside its second batch (%d)", len(segment), end)
	}
	segment[end-1] ^= 0x01
	return nil
}

// FlipSecondBatchBaseOffset flips a high bit of the base offset of the
// second batch of a segment's bytes: a field its CRC does not cover.
func FlipSecondBatchBaseOffset(segment []byte) error {
	second, err := secondBatch(segment, batchOverheadSize)
	if err != nil {
		return err
	}
	segment[second+3] ^= 0x10 // bit 36 of the big-endian int64
	return nil
}

// FlipSecondBatchLeaderEpoch flips a bit of the partition leader epoch of
// the second batch of a segment's bytes: another field its CRC does not
// cover.
func FlipSecondBatchLeaderEpoch(segment []byte) error {
	second, err := secondBatch(segment, batchEpochAt+4)
	if err != nil {
		return err
	}
	segment[second+batchEpochAt+1] ^= 0x10 // bit 20 of the big-endian int32
	return nil
}

// secondBatch returns where the second batch of segment bytes begins,
// once at least its first need bytes are there.
func secondBatch(segment []byte, need int) (int, error) {
	if len(segment) < batchLengthAt+4 {
		return 0, fmt.Errorf("segment of %d bytes holds no batch", len(segment))
	}
	second := batchOverheadSize + int(binary.BigEndian.Uint32(segment[batchLengthAt:]))
	if second+need > len(segment) {
		return 0, fmt.Errorf("segment of %d bytes holds one batch", len(segment))
	}
	return second, nil
}

// FlipSecondBatchMagicInFile applies FlipSecondBatchMagic to a segment file
// on the operating system's filesystem.
func FlipSecondBatchMagicInFile(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := FlipSecondBatchMagic(data); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return os.WriteFile(name, data, 0o644)
}
