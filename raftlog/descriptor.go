package raftlog

import (
	"fmt"
	"math"
)

// Snapshot descriptor layout (the Data of the raft snapshots Log.Snapshot
// returns and ApplySnapshot installs). Part of the format; doc.go draws it.
const (
	descriptorMagic         = 0x43524e44 // "CRND"
	descriptorFormatVersion = 1
	descriptorFixedBytes    = 24 // magic, version, flags, log start, next offset
	legacyEpochBytes        = 12
	// descriptorBytesMax bounds what DecodeDescriptor accepts, so a
	// damaged count cannot make it allocate without limit. The state data
	// (producer state, meta state) is what makes a descriptor large.
	descriptorBytesMax = 256 << 20
)

// LegacyEpoch is a leader epoch of a partition written before it was
// replicated (leader-epochs.json): the epoch and the first offset it
// wrote. Legacy epochs all lie below the snapshot the legacy directory
// becomes (design §1.8).
type LegacyEpoch struct {
	Epoch       int32
	StartOffset int64
}

// Descriptor is what a raft snapshot of a partition carries beside its
// metadata (design §2.2): where the data below it starts and ends, the
// term history at or below its index, the legacy epochs, and the state
// machine's own state as of the snapshot (opaque here).
type Descriptor struct {
	// LogStartOffset is the first offset of the data below the snapshot
	// the sender holds; NextOffset the offset after the snapshot's last
	// entry, where the log continues.
	LogStartOffset, NextOffset int64
	// Terms are the term boundaries at or below the snapshot index,
	// ascending.
	Terms []TermStart
	// LegacyEpochs are ascending in epoch and start offset.
	LegacyEpochs []LegacyEpoch
	// StateData is the state machine's (SetSnapshotData).
	StateData []byte
}

// EncodeDescriptor returns d in its versioned encoding.
func EncodeDescriptor(d Descriptor) []byte {
	b := make([]byte, 0, descriptorFixedBytes+12+len(d.Terms)*termStartBytes+len(d.LegacyEpochs)*legacyEpochBytes+len(d.StateData)+4)
	b = be.AppendUint32(b, descriptorMagic)
	b = be.AppendUint16(b, descriptorFormatVersion)
	b = be.AppendUint16(b, 0) // flags
	b = be.AppendUint64(b, uint64(d.LogStartOffset))
	b = be.AppendUint64(b, uint64(d.NextOffset))
	b = be.AppendUint32(b, uint32(len(d.Terms)))
	for _, t := range d.Terms {
		b = be.AppendUint64(b, t.Term)
		b = be.AppendUint64(b, t.Index)
		b = be.AppendUint64(b, uint64(t.Offset))
	}
	b = be.AppendUint32(b, uint32(len(d.LegacyEpochs)))
	for _, e := range d.LegacyEpochs {
		b = be.AppendUint32(b, uint32(e.Epoch))
		b = be.AppendUint64(b, uint64(e.StartOffset))
	}
	b = be.AppendUint32(b, uint32(len(d.StateData)))
	b = append(b, d.StateData...)
	return be.AppendUint32(b, crcOf(b))
}

// DecodeDescriptor parses a snapshot descriptor and checks it is
// consistent in itself: offsets not negative, the log start at or below
// the next offset, term boundaries and legacy epochs ascending and below
// the next offset. Errors wrap ErrVersion for another format version and
// ErrInvalid for anything else. The result shares no memory with b.
func DecodeDescriptor(b []byte) (Descriptor, error) {
	d, err := decodeDescriptor(b)
	if err != nil {
		return Descriptor{}, fmt.Errorf("snapshot descriptor: %w", err)
	}
	return d, nil
}

func decodeDescriptor(b []byte) (Descriptor, error) {
	if len(b) < descriptorFixedBytes+16 || len(b) > descriptorBytesMax {
		return Descriptor{}, fmt.Errorf("%d bytes: %w", len(b), ErrInvalid)
	}
	if magic := be.Uint32(b); magic != descriptorMagic {
		return Descriptor{}, fmt.Errorf("magic %#x: %w", magic, ErrInvalid)
	}
	body := b[:len(b)-4]
	if stored, computed := be.Uint32(b[len(body):]), crcOf(body); stored != computed {
		return Descriptor{}, fmt.Errorf("crc32c stored %#08x, computed %#08x: %w", stored, computed, ErrInvalid)
	}
	// The CRC sits at the end whatever the version, so a damaged version
	// field is damage, not a newer sender.
	if version := be.Uint16(b[4:]); version != descriptorFormatVersion {
		return Descriptor{}, fmt.Errorf("format version %d, want %d: %w", version, descriptorFormatVersion, ErrVersion)
	}
	if flags := be.Uint16(b[6:]); flags != 0 {
		return Descriptor{}, fmt.Errorf("flags %#x: %w", flags, ErrInvalid)
	}
	r := &bodyReader{b: body[8:]}
	d := Descriptor{LogStartOffset: r.offset("log start offset"), NextOffset: r.offset("next offset")}
	d.Terms = readTerms(r)
	d.LegacyEpochs = readLegacyEpochs(r)
	d.StateData = r.bytes("state data")
	if err := r.done(); err != nil {
		return Descriptor{}, err
	}
	return d, checkDescriptor(d)
}

// readTerms reads a u32 count and that many term boundaries, the count
// bounded by the bytes left before anything is allocated.
func readTerms(r *bodyReader) []TermStart {
	count := r.u32("term count")
	if r.err == nil && uint64(count)*termStartBytes > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d term boundaries in %d bytes: %w", count, len(r.b), ErrInvalid)
	}
	if r.err != nil || count == 0 {
		return nil
	}
	terms := make([]TermStart, count)
	for i := range terms {
		terms[i] = TermStart{Term: r.u64("term"), Index: r.u64("term index"), Offset: r.offset("term offset")}
	}
	return terms
}

// readLegacyEpochs reads a u32 count and that many legacy epochs, bounded
// as readTerms bounds its count.
func readLegacyEpochs(r *bodyReader) []LegacyEpoch {
	count := r.u32("legacy epoch count")
	if r.err == nil && uint64(count)*legacyEpochBytes > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d legacy epochs in %d bytes: %w", count, len(r.b), ErrInvalid)
	}
	if r.err != nil || count == 0 {
		return nil
	}
	epochs := make([]LegacyEpoch, count)
	for i := range epochs {
		epoch := r.u32("legacy epoch")
		if epoch > math.MaxInt32 && r.err == nil {
			r.err = fmt.Errorf("legacy epoch %d is negative: %w", int32(epoch), ErrInvalid)
		}
		epochs[i] = LegacyEpoch{Epoch: int32(epoch), StartOffset: r.offset("legacy epoch start offset")}
	}
	return epochs
}

// checkDescriptor verifies what a descriptor says of itself.
func checkDescriptor(d Descriptor) error {
	if d.LogStartOffset > d.NextOffset {
		return fmt.Errorf("log start offset %d past the next offset %d: %w", d.LogStartOffset, d.NextOffset, ErrInvalid)
	}
	for i, t := range d.Terms {
		if t.Term == 0 || t.Term > math.MaxInt32 || t.Offset > d.NextOffset ||
			(i > 0 && (t.Term <= d.Terms[i-1].Term || t.Index <= d.Terms[i-1].Index || t.Offset < d.Terms[i-1].Offset)) {
			return fmt.Errorf("term boundary %d %+v: %w", i, t, ErrInvalid)
		}
	}
	for i, e := range d.LegacyEpochs {
		if e.StartOffset > d.NextOffset || (i > 0 && (e.Epoch <= d.LegacyEpochs[i-1].Epoch || e.StartOffset < d.LegacyEpochs[i-1].StartOffset)) {
			return fmt.Errorf("legacy epoch %d %+v: %w", i, e, ErrInvalid)
		}
	}
	return nil
}
