package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// GroupMessages are the marshalled Raft messages of one group, in the
// order raft produced them.
type GroupMessages struct {
	Group    uint64
	Messages [][]byte // each a raftpb.Message, proto.Marshal'ed
}

// encodedBytes is the size of g inside a RaftBatch payload.
func (g GroupMessages) encodedBytes() int {
	n := raftBatchGroupHeaderBytes
	for _, m := range g.Messages {
		n += raftBatchMessageHeaderBytes + len(m)
	}
	return n
}

// AppendRaftBatch appends the RaftBatch payload holding groups to dst. A
// group may appear more than once (one entry per Send, in order); every
// entry holds at least one message. No groups make a keepalive, which
// only shows the connection is alive.
func AppendRaftBatch(dst []byte, groups []GroupMessages) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(groups)))
	for _, g := range groups {
		dst = binary.BigEndian.AppendUint64(dst, g.Group)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(g.Messages)))
		for _, m := range g.Messages {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(m)))
			dst = append(dst, m...)
		}
	}
	return dst
}

// ParseRaftBatch splits a RaftBatch payload into its groups without
// unmarshalling the messages; they alias payload. Counts are checked
// against the bytes left before anything is allocated for them, so a
// small malformed payload cannot make the reader allocate much.
func ParseRaftBatch(payload []byte) ([]GroupMessages, error) {
	d := &decoder{b: payload}
	count := d.u32("group count")
	if d.err == nil && count == 0 && len(d.b) == 0 {
		return nil, nil // a keepalive
	}
	if d.err == nil && (count == 0 || uint64(count)*raftBatchGroupHeaderBytes > uint64(len(d.b))) {
		return nil, fmt.Errorf("%w: %d groups in %d bytes", ErrMalformed, count, len(d.b))
	}
	groups := make([]GroupMessages, 0, count)
	for i := uint32(0); i < count && d.err == nil; i++ {
		g := GroupMessages{Group: d.u64("group id")}
		n := d.u32("message count")
		if d.err == nil && (n == 0 || uint64(n)*raftBatchMessageHeaderBytes > uint64(len(d.b))) {
			return nil, fmt.Errorf("%w: group %d: %d messages in %d bytes", ErrMalformed, g.Group, n, len(d.b))
		}
		g.Messages = make([][]byte, 0, n)
		for j := uint32(0); j < n && d.err == nil; j++ {
			g.Messages = append(g.Messages, d.take(int(d.u32("message length")), "message"))
		}
		groups = append(groups, g)
	}
	if err := d.finish("raft batch"); err != nil {
		return nil, err
	}
	return groups, nil
}

// UnmarshalMessages turns a group's marshalled messages into raftpb
// messages. The messages own their memory (nothing aliases the frame).
// A message is checked before it is unmarshalled (checkMessageShape), so
// decoding allocates a bounded multiple of its bytes.
func UnmarshalMessages(g GroupMessages) ([]*raftpb.Message, error) {
	msgs := make([]*raftpb.Message, len(g.Messages))
	for i, b := range g.Messages {
		if err := checkMessageShape(b); err != nil {
			return nil, fmt.Errorf("%w: group %d message %d: %v", ErrMalformed, g.Group, i, err)
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("%w: group %d message %d: %v", ErrMalformed, g.Group, i, err)
		}
		msgs[i] = m
	}
	return msgs, nil
}

// Field numbers of raftpb.Message that checkMessageShape looks at.
const (
	messageEntriesField   = 7
	messageResponsesField = 14
)

// entryBytesMin is the least encoded size of an entry raft sends: a term
// and an index (each at least 1) take two bytes apiece. An entry decodes
// into some 140 bytes of heap, so an empty one (2 bytes on the wire with
// its header) would amplify a frame 69 times; at 6 bytes on the wire,
// about 20 times (TestDecodeAllocationBound holds it under 32).
const entryBytesMin = 4

// checkMessageShape walks a marshalled message's top-level fields and
// refuses, before anything is allocated for them, entries shorter than
// any raft sends and responses (a field of local messages only, whose
// nested messages would escape the entry bound).
func checkMessageShape(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num == messageResponsesField {
			return errors.New("responses in a message from the network")
		}
		if num == messageEntriesField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if len(v) < entryBytesMin {
				return fmt.Errorf("an entry of %d bytes, at least %d", len(v), entryBytesMin)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}
