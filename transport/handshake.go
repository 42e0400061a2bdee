package transport

import (
	"encoding/binary"
	"fmt"
)

// Handshake is the first frame each way on a connection: who is speaking
// and for which cluster. A node refuses a peer of another cluster, so two
// clusters sharing hosts never exchange Raft messages.
type Handshake struct {
	Version     uint16
	ClusterID   string
	NodeID      uint64
	Incarnation uint64
}

const (
	handshakeMagic          = "CRNT"
	protocolVersion         = 1 // the only version spoken so far
	clusterIDBytesMax       = 255
	handshakeFixedBytes     = 4 + 2 + 8 + 8 + 1
	handshakeClusterIDFirst = handshakeFixedBytes
)

// EncodeHandshake returns h's payload, or an error for a cluster id that
// does not fit the format.
func EncodeHandshake(h Handshake) ([]byte, error) {
	if len(h.ClusterID) > clusterIDBytesMax {
		return nil, fmt.Errorf("transport: cluster id of %d bytes, at most %d", len(h.ClusterID), clusterIDBytesMax)
	}
	b := make([]byte, 0, handshakeFixedBytes+len(h.ClusterID))
	b = append(b, handshakeMagic...)
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = binary.BigEndian.AppendUint64(b, h.NodeID)
	b = binary.BigEndian.AppendUint64(b, h.Incarnation)
	b = append(b, byte(len(h.ClusterID)))
	return append(b, h.ClusterID...), nil
}

// DecodeHandshake parses a handshake payload. A wrong magic or a length
// that disagrees with the payload is ErrMalformed; a version other than
// the one spoken here is ErrVersion (the fields are still returned, for
// the log line).
func DecodeHandshake(payload []byte) (Handshake, error) {
	d := &decoder{b: payload}
	magic := d.take(len(handshakeMagic), "magic")
	if d.err == nil && string(magic) != handshakeMagic {
		return Handshake{}, fmt.Errorf("%w: handshake magic %q, want %q", ErrMalformed, magic, handshakeMagic)
	}
	h := Handshake{Version: d.u16("version"), NodeID: d.u64("node id"), Incarnation: d.u64("incarnation")}
	n := int(d.u8("cluster id length"))
	h.ClusterID = string(d.take(n, "cluster id"))
	if err := d.finish("handshake"); err != nil {
		return Handshake{}, err
	}
	if h.Version != protocolVersion {
		return h, fmt.Errorf("%w: %d, this node speaks %d", ErrVersion, h.Version, protocolVersion)
	}
	return h, nil
}
