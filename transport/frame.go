package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameType is the byte after a frame's length: what its payload holds.
// The numbers are part of the wire format.
type FrameType uint8

// Frame types. Those without a codec here are reserved for the frames the
// design gives them (docs/design/replication.md §3.6) and reach a handler
// registered with Config.Handlers untouched.
const (
	FrameRaftBatch         FrameType = 1 // Raft messages of many groups (AppendRaftBatch)
	FrameNodeHeartbeat     FrameType = 2 // node liveness and the leader table (AppendNodeHeartbeat)
	FrameSnapshotRead      FrameType = 3 // a follower asks for the data below a snapshot (AppendSnapshotRead)
	FrameSnapshotChunk     FrameType = 4 // the reply to FrameSnapshotRead (AppendSnapshotChunk)
	FrameMetaPropose       FrameType = 5 // a command forwarded to the meta leader (payload: package controller)
	FrameMetaProposeResult FrameType = 6 // the reply to FrameMetaPropose (payload: package controller)
	FrameJoin              FrameType = 7 // a learner to add, forwarded to the meta leader (payload: package controller)
	FrameJoinResult        FrameType = 8 // the reply to FrameJoin (payload: package controller)
	FrameHandshake         FrameType = 9 // the first frame each way on a connection (EncodeHandshake)
	// A new node started with a peer list asks its peers whether a cluster
	// exists before bootstrapping one, and joins it if one does.
	FrameClusterProbe       FrameType = 10 // does this node hold a cluster? (payload: package controller)
	FrameClusterProbeResult FrameType = 11 // the reply to FrameClusterProbe (payload: package controller)
	FrameNodeJoin           FrameType = 12 // a node asks a member to register it and add it (payload: package controller)
	FrameNodeJoinResult     FrameType = 13 // the reply to FrameNodeJoin (payload: package controller)
	// A node confirms that a peer is alive right now (Metadata, before it
	// names a leader there): the peer's reader answers at once.
	FramePing FrameType = 14 // a round trip asked for (AppendPing)
	FramePong FrameType = 15 // the reply to FramePing, echoing it (AppendPing)
	// A node's requests to another node's front end (transaction markers,
	// KIP-890 checks), authenticated as the node by the connection.
	FrameNodeRequest  FrameType = 16 // a request to serve (payload: package cluster)
	FrameNodeResponse FrameType = 17 // the reply to FrameNodeRequest (payload: package cluster)
	frameTypeKnownMax           = FrameNodeResponse
)

// FrameBytesMaxDefault bounds a frame's length (type and payload) unless
// configured otherwise: 16 MiB, the largest record batch a topic accepts
// by default with room to spare, plus 1 MiB for the headers of a batch of
// Raft messages (raft sends one entry even when it exceeds MaxSizePerMsg).
const FrameBytesMaxDefault = 17 << 20

// Sizes of the format's fixed parts.
const (
	frameHeaderBytes            = 5 // u32 length + u8 type
	frameLengthTypeOnlyBytes    = 1 // a length counts the type byte
	raftBatchHeaderBytes        = 4 // entry count
	raftBatchGroupHeaderBytes   = 12
	raftBatchMessageHeaderBytes = 4
)

var (
	// ErrFrameTooLarge: a frame's length exceeds the reader's bound. The
	// connection cannot be resynchronised and is closed.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformed: bytes that do not hold a valid frame, handshake or
	// batch (short, out of bounds, trailing bytes, an unknown type).
	ErrMalformed = errors.New("transport: malformed input")
	// ErrVersion: the peer speaks a protocol version this code does not.
	ErrVersion = errors.New("transport: unsupported protocol version")
)

func (t FrameType) String() string {
	names := [...]string{"", "RaftBatch", "NodeHeartbeat", "SnapshotRead", "SnapshotChunk",
		"MetaPropose", "MetaProposeResult", "Join", "JoinResult", "Handshake",
		"ClusterProbe", "ClusterProbeResult", "NodeJoin", "NodeJoinResult", "Ping", "Pong", "NodeRequest", "NodeResponse"}
	if t >= 1 && t <= frameTypeKnownMax {
		return names[t]
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// AppendFrame appends a frame of type t carrying payload to dst.
func AppendFrame(dst []byte, t FrameType, payload []byte) []byte {
	return append(appendFrameHeader(dst, t, len(payload)), payload...)
}

// appendFrameHeader appends the length and type of a frame whose payload
// of payloadBytes the caller appends next.
func appendFrameHeader(dst []byte, t FrameType, payloadBytes int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameLengthTypeOnlyBytes+payloadBytes))
	return append(dst, byte(t))
}

// ReadFrame reads one frame from r. Its length (type and payload) must be
// at most bytesMax: the bound is checked before anything is allocated, so
// a peer cannot make the reader hold more. buf is reused for the payload
// when large enough; the returned payload aliases it. A clean end between
// frames is io.EOF, an end inside one io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, bytesMax int, buf []byte) (FrameType, []byte, error) {
	var header [frameHeaderBytes]byte
	if _, err := io.ReadFull(r, header[:4]); err != nil {
		return 0, nil, err // io.EOF when nothing was read
	}
	length := binary.BigEndian.Uint32(header[:4])
	if length == 0 {
		return 0, nil, fmt.Errorf("%w: frame of length 0 has no type", ErrMalformed)
	}
	if uint64(length) > uint64(bytesMax) {
		return 0, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrFrameTooLarge, length, bytesMax)
	}
	if _, err := io.ReadFull(r, header[4:]); err != nil {
		return 0, nil, unexpected(err)
	}
	n := int(length) - frameLengthTypeOnlyBytes
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	payload := buf[:n]
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, unexpected(err)
	}
	return FrameType(header[4]), payload, nil
}

// unexpected turns a clean end inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decoder reads big-endian fields from a payload, remembering the first
// shortfall so a decoder checks once at the end (as raftlog's bodyReader).
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: %s needs %d bytes, %d left", ErrMalformed, what, n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8(what string) uint8 {
	if b := d.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if b := d.take(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if b := d.take(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if b := d.take(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// finish reports the first error, or trailing bytes.
func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%w: %d bytes after the %s", ErrMalformed, len(d.b), what)
	}
	return d.err
}
