package transport

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
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
// entry holds at least one message.
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
func UnmarshalMessages(g GroupMessages) ([]*raftpb.Message, error) {
	msgs := make([]*raftpb.Message, len(g.Messages))
	for i, b := range g.Messages {
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("%w: group %d message %d: %v", ErrMalformed, g.Group, i, err)
		}
		msgs[i] = m
	}
	return msgs, nil
}
