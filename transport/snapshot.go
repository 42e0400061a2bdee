package transport

import (
	"encoding/binary"
	"fmt"
)

// SnapshotRead is the payload of a FrameSnapshotRead: a follower installing
// the snapshot (Index, Term) of Group asks the leader's node for the data
// below it from Offset (docs/design/replication.md §2.2, §3.6). Data is
// addressed by Kafka offset, not by file: the follower rebuilds its own
// segments and indexes by appending what it copies.
type SnapshotRead struct {
	Group       uint64
	Index, Term uint64 // the snapshot's, as the follower's MsgSnap carried it
	Offset      int64  // where the copy continues: at a batch boundary
	MaxBytes    uint32 // the answer's data bound (its first batch is whole)
}

// SnapshotStatus says what a SnapshotChunk answers.
type SnapshotStatus uint8

// Snapshot chunk statuses. The numbers are part of the wire format.
const (
	// SnapshotOK: the chunk holds data and where to continue.
	SnapshotOK SnapshotStatus = 0
	// SnapshotChanged: the snapshot is no longer the sender's current one
	// (or the data asked for is gone); the follower drops its copy and
	// starts again from the snapshot raft sends it next.
	SnapshotChanged SnapshotStatus = 1
	// SnapshotUnavailable: the node cannot serve now (no replica of the
	// group here, too many sends in progress, a read error); ask again later.
	SnapshotUnavailable SnapshotStatus = 2
	snapshotStatusMax                  = SnapshotUnavailable
)

// SnapshotChunk is the payload of a FrameSnapshotChunk, the answer to a
// SnapshotRead, echoing what it answers.
type SnapshotChunk struct {
	Group       uint64
	Index, Term uint64
	Offset      int64 // the read's offset
	Status      SnapshotStatus
	// Next is where the next read starts (the offset after the last batch,
	// or the snapshot's next offset when the copy is complete); SnapshotOK
	// only, and at or above Offset.
	Next int64
	// Batches are whole stored batches from Offset below Next; SnapshotOK
	// only. They alias the parsed payload.
	Batches []byte
}

// Sizes of the snapshot frames' fixed parts.
const (
	snapshotReadBytes        = 8 + 8 + 8 + 8 + 4
	snapshotChunkHeaderBytes = 8 + 8 + 8 + 8 + 1 + 8 + 4
)

// AppendSnapshotRead appends the payload of r to dst.
func AppendSnapshotRead(dst []byte, r SnapshotRead) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Group)
	dst = binary.BigEndian.AppendUint64(dst, r.Index)
	dst = binary.BigEndian.AppendUint64(dst, r.Term)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Offset))
	return binary.BigEndian.AppendUint32(dst, r.MaxBytes)
}

// ParseSnapshotRead decodes a SnapshotRead payload. A negative offset, a
// zero index, term or byte bound are ErrMalformed.
func ParseSnapshotRead(payload []byte) (SnapshotRead, error) {
	d := &decoder{b: payload}
	r := SnapshotRead{Group: d.u64("group id"), Index: d.u64("snapshot index"), Term: d.u64("snapshot term"),
		Offset: int64(d.u64("offset")), MaxBytes: d.u32("max bytes")}
	if err := d.finish("snapshot read"); err != nil {
		return SnapshotRead{}, fmt.Errorf("snapshot read: %w", err)
	}
	if r.Index == 0 || r.Term == 0 || r.Offset < 0 || r.MaxBytes == 0 {
		return SnapshotRead{}, fmt.Errorf("%w: snapshot read of group %d: index %d, term %d, offset %d, max bytes %d",
			ErrMalformed, r.Group, r.Index, r.Term, r.Offset, r.MaxBytes)
	}
	return r, nil
}

// AppendSnapshotChunk appends the payload of c to dst. A chunk that is not
// SnapshotOK must carry no Next and no Batches (ParseSnapshotChunk refuses
// others).
func AppendSnapshotChunk(dst []byte, c SnapshotChunk) []byte {
	dst = binary.BigEndian.AppendUint64(dst, c.Group)
	dst = binary.BigEndian.AppendUint64(dst, c.Index)
	dst = binary.BigEndian.AppendUint64(dst, c.Term)
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Offset))
	dst = append(dst, byte(c.Status))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Next))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Batches)))
	return append(dst, c.Batches...)
}

// ParseSnapshotChunk decodes a SnapshotChunk payload: the data length must
// be exactly the bytes left; an unknown status, a Next below Offset, or a
// Next or data on a chunk that is not SnapshotOK are ErrMalformed, so the
// encoding is canonical. The batches themselves are the receiver's to
// check (raftlog.CheckSnapshotData).
func ParseSnapshotChunk(payload []byte) (SnapshotChunk, error) {
	d := &decoder{b: payload}
	c := SnapshotChunk{Group: d.u64("group id"), Index: d.u64("snapshot index"), Term: d.u64("snapshot term"),
		Offset: int64(d.u64("offset")), Status: SnapshotStatus(d.u8("status")), Next: int64(d.u64("next offset"))}
	n := d.u32("data length")
	if d.err == nil && uint64(n) != uint64(len(d.b)) {
		return SnapshotChunk{}, fmt.Errorf("%w: snapshot chunk: %d bytes of data in %d", ErrMalformed, n, len(d.b))
	}
	if n > 0 {
		c.Batches = d.take(int(n), "data")
	}
	if err := d.finish("snapshot chunk"); err != nil {
		return SnapshotChunk{}, fmt.Errorf("snapshot chunk: %w", err)
	}
	if err := checkSnapshotChunk(c); err != nil {
		return SnapshotChunk{}, err
	}
	return c, nil
}

// checkSnapshotChunk refuses what a chunk cannot say.
func checkSnapshotChunk(c SnapshotChunk) error {
	switch {
	case c.Index == 0 || c.Term == 0 || c.Offset < 0:
		return fmt.Errorf("%w: snapshot chunk of group %d: index %d, term %d, offset %d", ErrMalformed, c.Group, c.Index, c.Term, c.Offset)
	case c.Status > snapshotStatusMax:
		return fmt.Errorf("%w: snapshot chunk of group %d: status %d", ErrMalformed, c.Group, c.Status)
	case c.Status != SnapshotOK && (c.Next != 0 || len(c.Batches) > 0):
		return fmt.Errorf("%w: snapshot chunk of group %d: status %d with next offset %d and %d bytes",
			ErrMalformed, c.Group, c.Status, c.Next, len(c.Batches))
	case c.Status == SnapshotOK && c.Next < c.Offset:
		return fmt.Errorf("%w: snapshot chunk of group %d: next offset %d, read at %d", ErrMalformed, c.Group, c.Next, c.Offset)
	}
	return nil
}
