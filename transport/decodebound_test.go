package transport

import (
	"errors"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// messageOfEntries encodes a MsgApp whose entries are each the given raw
// Entry bytes, up to about size bytes.
func messageOfEntries(size int, entry func(i uint64) []byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 3) // MsgApp
	for i := uint64(1); len(b) < size; i++ {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendBytes(b, entry(i))
	}
	return b
}

// allocatedBy returns the bytes f allocates.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeAllocationBound: decoding a message allocates at most
// decodedBytesPerEncodedByteMax times its size. A message of empty
// entries (two bytes each on the wire, over a hundred once decoded) is
// refused before anything is allocated for it; one of the smallest entries
// accepted (a term and an index of one byte each) decodes within the bound.
func TestDecodeAllocationBound(t *testing.T) {
	const decodedBytesPerEncodedByteMax = 32
	const size = 2 << 20
	empty := messageOfEntries(size, func(uint64) []byte { return nil })
	var err error
	n := allocatedBy(func() { _, err = UnmarshalMessages(GroupMessages{Group: 1, Messages: [][]byte{empty}}) })
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("a message of empty entries: %v, want ErrMalformed", err)
	}
	if n > 1<<20 {
		t.Errorf("refusing %d bytes of empty entries allocated %d bytes", len(empty), n)
	}

	smallest := messageOfEntries(size, func(i uint64) []byte {
		e := protowire.AppendTag(nil, 2, protowire.VarintType)
		e = protowire.AppendVarint(e, 1)
		e = protowire.AppendTag(e, 3, protowire.VarintType)
		return protowire.AppendVarint(e, i)
	})
	n = allocatedBy(func() { _, err = UnmarshalMessages(GroupMessages{Group: 1, Messages: [][]byte{smallest}}) })
	if err != nil {
		t.Fatal(err)
	}
	if n > uint64(decodedBytesPerEncodedByteMax)*uint64(len(smallest)) {
		t.Errorf("decoding %d bytes of the smallest entries allocated %d bytes, %dx, bound %dx", len(smallest), n, n/uint64(len(smallest)), decodedBytesPerEncodedByteMax)
	}
	t.Logf("%d bytes of the smallest entries: %d allocated, %.1fx", len(smallest), n, float64(n)/float64(len(smallest)))
}
