package transport

import (
	"encoding/binary"
	"fmt"
)

// NodeHeartbeat is the payload of a FrameNodeHeartbeat: a node says it is
// alive and which groups it leads (docs/design/replication.md §6.3). The
// sender sends the same heartbeat to every peer; package leaders builds
// and reads them.
type NodeHeartbeat struct {
	NodeID      uint64 // the sender
	Incarnation uint64 // the sender's incarnation (design §5.4)
	// BootID is drawn at random when the sender process starts: a process
	// restarted with the same incarnation counts Sequence from 1 again,
	// and a new BootID tells its receivers to count afresh.
	BootID uint64
	// Sequence counts the heartbeats of one sender process (one BootID)
	// from 1, so a receiver can tell a stale or repeated delta from a new
	// one.
	Sequence uint64
	// SentUnixMs is the sender's env clock at sending, in Unix
	// milliseconds: for status pages and logs, never compared with the
	// receiver's clock.
	SentUnixMs int64
	// Full says Entries are every group the sender leads (its other
	// entries at the receiver are stale); otherwise they are the changes
	// since its previous heartbeat.
	Full bool
	// WantFull asks the receiver for its full list next: the sender came
	// to know the receiver again by a delta, and deltas before it were
	// lost. Set per receiver.
	WantFull bool
	// Entries in ascending group order, each group at most once.
	Entries []LeaderEntry
}

// LeaderEntry is one group as the sender of a heartbeat sees it.
type LeaderEntry struct {
	Group uint64
	Term  uint64
	// Leader is the sender's replica leading Group in Term (ready to
	// serve), or 0 in a delta: the sender no longer leads Group, whose
	// latest term it knows is Term.
	Leader uint64
}

// Sizes of the NodeHeartbeat format's fixed parts.
const (
	heartbeatHeaderBytes  = 8 + 8 + 8 + 8 + 8 + 1 + 4
	heartbeatEntryBytes   = 8 + 8 + 8
	heartbeatFlagFull     = 1
	heartbeatFlagWantFull = 2
	heartbeatFlagsKnown   = heartbeatFlagFull | heartbeatFlagWantFull
)

// AppendNodeHeartbeat appends the payload of h to dst. h.Entries must be
// in strictly ascending group order (ParseNodeHeartbeat refuses others).
func AppendNodeHeartbeat(dst []byte, h NodeHeartbeat) []byte {
	dst = binary.BigEndian.AppendUint64(dst, h.NodeID)
	dst = binary.BigEndian.AppendUint64(dst, h.Incarnation)
	dst = binary.BigEndian.AppendUint64(dst, h.BootID)
	dst = binary.BigEndian.AppendUint64(dst, h.Sequence)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.SentUnixMs))
	var flags byte
	if h.Full {
		flags |= heartbeatFlagFull
	}
	if h.WantFull {
		flags |= heartbeatFlagWantFull
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(h.Entries)))
	for _, e := range h.Entries {
		dst = binary.BigEndian.AppendUint64(dst, e.Group)
		dst = binary.BigEndian.AppendUint64(dst, e.Term)
		dst = binary.BigEndian.AppendUint64(dst, e.Leader)
	}
	return dst
}

// ParseNodeHeartbeat decodes a NodeHeartbeat payload. The entry count is
// checked against the bytes left before anything is allocated for it;
// unknown flags, groups out of order or repeated, a full heartbeat entry
// without a leader, and a leader on another node are ErrMalformed, so the
// encoding is canonical (what parses encodes back to the same bytes).
func ParseNodeHeartbeat(payload []byte) (NodeHeartbeat, error) {
	d := &decoder{b: payload}
	h := NodeHeartbeat{
		NodeID:      d.u64("node id"),
		Incarnation: d.u64("incarnation"),
		BootID:      d.u64("boot id"),
		Sequence:    d.u64("sequence"),
		SentUnixMs:  int64(d.u64("send time")),
	}
	flags := d.u8("flags")
	count := d.u32("entry count")
	if d.err != nil {
		return NodeHeartbeat{}, fmt.Errorf("node heartbeat: %w", d.err)
	}
	if flags&^heartbeatFlagsKnown != 0 {
		return NodeHeartbeat{}, fmt.Errorf("%w: node heartbeat: unknown flags %#x", ErrMalformed, flags)
	}
	h.Full = flags&heartbeatFlagFull != 0
	h.WantFull = flags&heartbeatFlagWantFull != 0
	if uint64(count)*heartbeatEntryBytes != uint64(len(d.b)) {
		return NodeHeartbeat{}, fmt.Errorf("%w: node heartbeat: %d entries in %d bytes", ErrMalformed, count, len(d.b))
	}
	if count > 0 {
		h.Entries = make([]LeaderEntry, 0, count)
	}
	for i := uint32(0); i < count; i++ {
		e := LeaderEntry{Group: d.u64("group id"), Term: d.u64("term"), Leader: d.u64("leader")}
		if err := checkHeartbeatEntry(h, e); err != nil {
			return NodeHeartbeat{}, err
		}
		h.Entries = append(h.Entries, e)
	}
	if err := d.finish("node heartbeat"); err != nil {
		return NodeHeartbeat{}, err
	}
	return h, nil
}

// checkHeartbeatEntry refuses an entry out of group order, naming a leader
// on another node than the sender (a node speaks only for itself), or
// without a leader in a full heartbeat (which lists only the groups led).
func checkHeartbeatEntry(h NodeHeartbeat, e LeaderEntry) error {
	if e.Leader != 0 && NodeOf(e.Leader) != h.NodeID {
		return fmt.Errorf("%w: node heartbeat of node %d: group %d led by replica %#x of node %d",
			ErrMalformed, h.NodeID, e.Group, e.Leader, NodeOf(e.Leader))
	}
	if n := len(h.Entries); n > 0 && e.Group <= h.Entries[n-1].Group {
		return fmt.Errorf("%w: node heartbeat: group %d after group %d", ErrMalformed, e.Group, h.Entries[n-1].Group)
	}
	if h.Full && e.Leader == 0 {
		return fmt.Errorf("%w: node heartbeat: full list names group %d without a leader", ErrMalformed, e.Group)
	}
	return nil
}
